#!/usr/bin/env python3
"""Run one command on a WinRM endpoint with pywinrm and print the result as JSON.

Usage: winrm_client.py ENDPOINT TRANSPORT USER PASSWORD CA|- OP_TIMEOUT READ_TIMEOUT SCRIPT [SPN_HOST]

TRANSPORT is pywinrm's (ntlm, basic, kerberos), or ntlm-plain for NTLM with message_encryption='never',
or negotiate for kerberos with the Kerberos token wrapped in SPNEGO (RFC 4178), as Windows'
Negotiate package sends it. CA is a PEM file to verify HTTPS against, or '-'.
With kerberos the ticket comes from the credential cache (KRB5CCNAME, KRB5_CONFIG) and SPN_HOST,
when given, names the service principal HTTP/SPN_HOST (pywinrm's kerberos_hostname_override).
SCRIPT runs as PowerShell (-EncodedCommand). Errors are printed as {"error": ...} with exit 2.
"""
import json
import sys

import winrm
from winrm.exceptions import InvalidCredentialsError


def spnego_through_pykerberos() -> None:
    """Make pywinrm's Kerberos transport start its contexts with MIT's SPNEGO mechanism
    (pykerberos' mech_oid), so each token is a NegTokenInit/NegTokenResp around the Kerberos
    one, and the context seals messages through SPNEGO as a Windows client's does."""
    import kerberos

    init = kerberos.authGSSClientInit

    def spnego_init(service, *args, **kwargs):
        kwargs["mech_oid"] = kerberos.GSS_MECH_OID_SPNEGO
        return init(service, *args, **kwargs)

    kerberos.authGSSClientInit = spnego_init


def main() -> int:
    endpoint, transport, user, password, ca, op_timeout, read_timeout, script = sys.argv[1:9]
    spn_host = sys.argv[9] if len(sys.argv) > 9 else None
    encryption = "never" if transport == "ntlm-plain" else "auto"
    if transport == "negotiate":
        spnego_through_pykerberos()
        transport = "kerberos"
    transport = transport.removesuffix("-plain")
    kwargs = dict(
        transport=transport,
        operation_timeout_sec=int(op_timeout),
        read_timeout_sec=int(read_timeout),
        message_encryption=encryption,
    )
    if endpoint.startswith("https"):
        kwargs["server_cert_validation"] = "validate"
        kwargs["ca_trust_path"] = ca
    elif transport in ("ntlm", "kerberos") and encryption == "auto":
        kwargs["message_encryption"] = "always"
    if spn_host:
        kwargs["kerberos_hostname_override"] = spn_host
    session = winrm.Session(endpoint, auth=(user, password), **kwargs)
    try:
        result = session.run_ps(script)
    except InvalidCredentialsError as e:
        print(json.dumps({"error": "unauthorized", "detail": str(e)}))
        return 2
    except Exception as e:  # noqa: BLE001 - report anything else as data for the test
        print(json.dumps({"error": type(e).__name__, "detail": str(e)}))
        return 2
    print(json.dumps({
        "status_code": result.status_code,
        "std_out": result.std_out.decode("utf-8", "replace"),
        "std_err": result.std_err.decode("utf-8", "replace"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
