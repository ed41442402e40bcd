//! Kerberos initiator through the system's GSS-API (MIT Kerberos' `libgssapi_krb5.so.2`),
//! loaded when first needed instead of linked: building salve needs neither the krb5 headers
//! nor libclang (no bindgen), and a salve on a machine without the library still runs, with a
//! clear error naming the package only when a host actually uses Kerberos.
//!
//! What salve's WinRM client needs, and no more: a credential from a password
//! (`gss_acquire_cred_with_password`, an AS exchange whose ticket stays in memory) or the
//! default credential cache (`kinit`, `KRB5CCNAME`), a client context for `HTTP/<host>` with
//! mutual authentication and confidentiality (optionally with RFC 5929 channel bindings), and
//! message encryption with `gss_wrap_iov`/`gss_unwrap` (MS-WSMV §2.2.9.1). Failures carry the
//! library's own texts (`gss_display_status`), which `salve doctor` reads.

mod ffi;

use std::ffi::c_int;
use std::ptr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ffi::{Buffer, Functions, GssCred, GssCtx, GssName, IovBuffer, OmUint32};
pub use ffi::{LIBRARY_NAMES, LoadError};

/// The environment variable naming the library file to load instead of [`LIBRARY_NAMES`].
pub const LIBRARY_VARIABLE: &str = "SALVE_GSSAPI_LIBRARY";

/// A GSS-API failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(&'static LoadError),
    /// A call failed; the text is the library's (major status, then the mechanism's minor
    /// status in parentheses, as `gss_display_status` words them).
    #[error("{text}")]
    Call {
        major: u32,
        minor: u32,
        text: String,
    },
    #[error("the Kerberos context was established without {0}, which salve requires")]
    NotGranted(&'static str),
    #[error("gss_wrap_iov did not encrypt the message")]
    NotEncrypted,
    #[error("{0} is longer than the GSS-API can take")]
    TooLong(&'static str),
}

static LIBRARY: OnceLock<Result<Functions, LoadError>> = OnceLock::new();

/// The library's functions, loaded on first use (once per process).
fn functions() -> Result<&'static Functions, Error> {
    LIBRARY
        .get_or_init(|| match std::env::var(LIBRARY_VARIABLE) {
            Ok(path) if !path.is_empty() => Functions::load(&[&path]),
            _ => Functions::load(LIBRARY_NAMES),
        })
        .as_ref()
        .map_err(Error::Load)
}

/// Whether the GSS-API library can be loaded (`salve doctor`).
pub fn available() -> Result<(), Error> {
    functions().map(|_| ())
}

/// Whether a major status is an error (`GSS_ERROR`).
fn failed(major: OmUint32) -> bool {
    major & ffi::GSS_ERROR_MASK != 0
}

/// The text of a status code (`gss_display_status`, every message of it).
fn status_text(fns: &Functions, code: OmUint32, kind: c_int) -> String {
    let mut text = String::new();
    let mut context: OmUint32 = 0;
    // MIT gives one message per call; a handful is all any status has.
    for _ in 0..8 {
        let mut minor = 0;
        let mut out = Buffer::EMPTY;
        // SAFETY: every pointer is to a live local; `out` is released below.
        let major = unsafe {
            (fns.display_status)(&mut minor, code, kind, ptr::null(), &mut context, &mut out)
        };
        if failed(major) {
            break;
        }
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&String::from_utf8_lossy(
            take_buffer(fns, &mut out).as_slice(),
        ));
        if context == 0 {
            break;
        }
    }
    text
}

/// Copy a buffer the library allocated and release it.
fn take_buffer(fns: &Functions, buffer: &mut Buffer) -> Vec<u8> {
    let bytes = if buffer.value.is_null() || buffer.length == 0 {
        Vec::new()
    } else {
        // SAFETY: the library filled `buffer` with `length` readable bytes at `value`.
        unsafe { std::slice::from_raw_parts(buffer.value.cast::<u8>(), buffer.length) }.to_vec()
    };
    let mut minor = 0;
    // SAFETY: `buffer` was allocated by this library (or is empty, which it accepts).
    unsafe { (fns.release_buffer)(&mut minor, buffer) };
    bytes
}

/// The error of a failed call, with the library's texts.
fn call_error(fns: &Functions, major: OmUint32, minor: OmUint32) -> Error {
    let mut text = status_text(fns, major, ffi::GSS_C_GSS_CODE);
    if minor != 0 {
        text.push_str(&format!(
            " ({})",
            status_text(fns, minor, ffi::GSS_C_MECH_CODE)
        ));
    }
    Error::Call { major, minor, text }
}

/// An imported Kerberos principal name.
struct Name {
    fns: &'static Functions,
    raw: GssName,
}

impl Name {
    /// `user@REALM`, `HTTP/host@REALM` (or without the realm: the default one).
    fn principal(fns: &'static Functions, text: &str) -> Result<Name, Error> {
        let input = Buffer::borrowing(text.as_bytes());
        let name_type = ffi::oid(ffi::NT_KRB5_PRINCIPAL);
        let mut raw: GssName = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: `input` and `name_type` describe live memory the call only reads; `raw`
        // receives a name that `Drop` releases.
        let major = unsafe { (fns.import_name)(&mut minor, &input, &name_type, &mut raw) };
        if failed(major) {
            return Err(call_error(fns, major, minor));
        }
        Ok(Name { fns, raw })
    }
}

// SAFETY: a name is immutable once imported and owned by one value; MIT's names hold no
// thread-local state, so moving one to another thread is sound.
unsafe impl Send for Name {}

impl Drop for Name {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: `raw` came from gss_import_name and is released once.
        unsafe { (self.fns.release_name)(&mut minor, &mut self.raw) };
    }
}

/// A Kerberos initiator credential (a ticket-granting ticket held in memory). Cheap to clone;
/// shared by every context made from it.
#[derive(Clone)]
pub struct Cred(Arc<CredHandle>);

struct CredHandle {
    fns: &'static Functions,
    raw: GssCred,
}

// SAFETY: MIT krb5 guards each credential with its own mutex (k5_mutex in
// krb5_gss_cred_id_rec), so a handle can be used from any thread, and by several at once.
unsafe impl Send for CredHandle {}
// SAFETY: as above.
unsafe impl Sync for CredHandle {}

impl Drop for CredHandle {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: `raw` came from gss_acquire_cred_with_password and is released once.
        unsafe { (self.fns.release_cred)(&mut minor, &mut self.raw) };
    }
}

impl Cred {
    /// A ticket for `principal` from its password: an AS exchange with the realm's KDC (found
    /// through krb5.conf, `KRB5_CONFIG`). Blocks for the exchange.
    pub fn with_password(principal: &str, password: &str) -> Result<Cred, Error> {
        let fns = functions()?;
        let name = Name::principal(fns, principal)?;
        let password = Buffer::borrowing(password.as_bytes());
        let mut krb5 = ffi::oid(ffi::MECH_KRB5);
        let mechs = ffi::OidSet {
            count: 1,
            elements: &mut krb5,
        };
        let mut raw: GssCred = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: the name, password and mechanism set are live for the call, which only reads
        // them; `raw` receives a credential that `CredHandle::drop` releases; the actual mechs
        // and time outputs are not asked for (null).
        let major = unsafe {
            (fns.acquire_cred_with_password)(
                &mut minor,
                name.raw,
                &password,
                ffi::GSS_C_INDEFINITE,
                &mechs,
                ffi::GSS_C_INITIATE,
                &mut raw,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if failed(major) {
            return Err(call_error(fns, major, minor));
        }
        Ok(Cred(Arc::new(CredHandle { fns, raw })))
    }

    /// How long the ticket is still valid.
    pub fn lifetime(&self) -> Result<Duration, Error> {
        let fns = self.0.fns;
        let mut lifetime: OmUint32 = 0;
        let mut minor = 0;
        // SAFETY: `raw` is a live credential; only the lifetime output is asked for.
        let major = unsafe {
            (fns.inquire_cred)(
                &mut minor,
                self.0.raw,
                ptr::null_mut(),
                &mut lifetime,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if failed(major) {
            return Err(call_error(fns, major, minor));
        }
        Ok(Duration::from_secs(u64::from(lifetime)))
    }
}

/// A security context handle, deleted on drop.
struct RawContext {
    fns: &'static Functions,
    raw: GssCtx,
}

// SAFETY: a context is used by one thread at a time (every use takes `&mut self`), and MIT's
// contexts hold no thread-local state, so moving one between threads is sound.
unsafe impl Send for RawContext {}

impl Drop for RawContext {
    fn drop(&mut self) {
        if self.raw.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: `raw` came from gss_init_sec_context and is deleted once; no output token.
        unsafe { (self.fns.delete_sec_context)(&mut minor, &mut self.raw, ptr::null_mut()) };
    }
}

/// A client context waiting for the server's answer (Kerberos: its AP-REP).
pub struct PendingContext {
    context: RawContext,
    target: Name,
    cred: Option<Cred>,
}

/// What the server's token did to a pending context.
pub enum Step {
    /// The context is established; `token` is a last token for the server, if the library
    /// produced one.
    Finished {
        context: Context,
        token: Option<Vec<u8>>,
    },
    /// Another round trip is needed, with this token.
    Continue {
        pending: PendingContext,
        token: Vec<u8>,
    },
}

/// What salve asks of every context: the server proves itself (mutual authentication), and
/// messages can be signed and encrypted.
const REQUESTED: OmUint32 = ffi::GSS_C_MUTUAL_FLAG | ffi::GSS_C_CONF_FLAG | ffi::GSS_C_INTEG_FLAG;

/// Start a Kerberos (raw RFC 4121 mechanism, not SPNEGO) client context for the service
/// principal `target` (`HTTP/host`), with `cred` or else the default credential cache, and
/// `channel_bindings` as the bindings' application data. Returns the first token for the
/// server (the AP-REQ). Blocks while the library asks the KDC for a service ticket.
pub fn initiate(
    cred: Option<&Cred>,
    target: &str,
    channel_bindings: Option<&[u8]>,
) -> Result<(PendingContext, Vec<u8>), Error> {
    let fns = functions()?;
    let mut pending = PendingContext {
        context: RawContext {
            fns,
            raw: ptr::null_mut(),
        },
        target: Name::principal(fns, target)?,
        cred: cred.cloned(),
    };
    match pending.call(None, channel_bindings)? {
        (_, Some(token)) => Ok((pending, token)),
        (_, None) => Err(Error::NotGranted("a first token for the server")),
    }
}

impl PendingContext {
    /// One `gss_init_sec_context` call: whether the context is complete, and the token to send.
    fn call(
        &mut self,
        input: Option<&[u8]>,
        channel_bindings: Option<&[u8]>,
    ) -> Result<(Option<OmUint32>, Option<Vec<u8>>), Error> {
        let fns = self.context.fns;
        let bindings = channel_bindings.map(|data| ffi::ChannelBindings {
            initiator_addrtype: 0,
            initiator_address: Buffer::EMPTY,
            acceptor_addrtype: 0,
            acceptor_address: Buffer::EMPTY,
            application_data: Buffer::borrowing(data),
        });
        let input = input.map(Buffer::borrowing);
        let krb5 = ffi::oid(ffi::MECH_KRB5);
        let cred = self.cred.as_ref().map_or(ptr::null_mut(), |c| c.0.raw);
        let mut out = Buffer::EMPTY;
        let mut flags: OmUint32 = 0;
        let mut minor = 0;
        // SAFETY: the credential, context and target handles are live (owned by `self`); the
        // bindings, input token and mechanism describe live memory the call only reads; `out`
        // is released by `take_buffer`; the actual-mech and time outputs are not asked for.
        let major = unsafe {
            (fns.init_sec_context)(
                &mut minor,
                cred,
                &mut self.context.raw,
                self.target.raw,
                &krb5,
                REQUESTED,
                0,
                bindings.as_ref().map_or(ptr::null(), |b| b as *const _),
                input.as_ref().map_or(ptr::null(), |b| b as *const _),
                ptr::null_mut(),
                &mut out,
                &mut flags,
                ptr::null_mut(),
            )
        };
        let token = take_buffer(fns, &mut out);
        if failed(major) {
            return Err(call_error(fns, major, minor));
        }
        let token = (!token.is_empty()).then_some(token);
        let complete = (major & ffi::GSS_S_CONTINUE_NEEDED == 0).then_some(flags);
        Ok((complete, token))
    }

    /// Feed the server's token (the AP-REP) to the context.
    pub fn step(mut self, token: &[u8]) -> Result<Step, Error> {
        match self.call(Some(token), None)? {
            (Some(flags), token) => {
                if flags & ffi::GSS_C_MUTUAL_FLAG == 0 {
                    return Err(Error::NotGranted("mutual authentication"));
                }
                if flags & ffi::GSS_C_CONF_FLAG == 0 {
                    return Err(Error::NotGranted("confidentiality"));
                }
                Ok(Step::Finished {
                    context: Context {
                        context: self.context,
                    },
                    token,
                })
            }
            (None, token) => Ok(Step::Continue {
                token: token.unwrap_or_default(),
                pending: self,
            }),
        }
    }
}

/// An established client context.
pub struct Context {
    context: RawContext,
}

/// The buffers of an encrypting `gss_wrap_iov`, as MIT fills them (rotation count 0).
pub struct Wrapped {
    pub header: Vec<u8>,
    pub data: Vec<u8>,
    pub padding: Vec<u8>,
    pub trailer: Vec<u8>,
}

impl Context {
    /// Encrypt `plaintext` with `gss_wrap_iov` into separate header, data, padding and
    /// trailer buffers (sized first with `gss_wrap_iov_length`).
    pub fn wrap_iov(&mut self, plaintext: &[u8]) -> Result<Wrapped, Error> {
        let fns = self.context.fns;
        let mut data = plaintext.to_vec();
        let iov = |kind, buffer: &mut Vec<u8>| IovBuffer {
            kind,
            buffer: Buffer {
                length: buffer.len(),
                value: buffer.as_mut_ptr().cast(),
            },
        };
        let (mut header, mut padding, mut trailer) = (Vec::new(), Vec::new(), Vec::new());
        let mut sizes = [
            iov(ffi::IOV_HEADER, &mut header),
            iov(ffi::IOV_DATA, &mut data),
            iov(ffi::IOV_PADDING, &mut padding),
            iov(ffi::IOV_TRAILER, &mut trailer),
        ];
        self.wrap_call(fns.wrap_iov_length, &mut sizes)?;
        header.resize(sizes[0].buffer.length, 0);
        padding.resize(sizes[2].buffer.length, 0);
        trailer.resize(sizes[3].buffer.length, 0);
        let mut buffers = [
            iov(ffi::IOV_HEADER, &mut header),
            iov(ffi::IOV_DATA, &mut data),
            iov(ffi::IOV_PADDING, &mut padding),
            iov(ffi::IOV_TRAILER, &mut trailer),
        ];
        if self.wrap_call(fns.wrap_iov, &mut buffers)? == 0 {
            return Err(Error::NotEncrypted);
        }
        // The padding actually used can be shorter than the length asked for.
        padding.truncate(buffers[2].buffer.length);
        Ok(Wrapped {
            header,
            data,
            padding,
            trailer,
        })
    }

    /// `gss_wrap_iov` or `gss_wrap_iov_length` with confidentiality; the confidentiality
    /// state it reports.
    fn wrap_call(
        &mut self,
        function: ffi::WrapIov,
        buffers: &mut [IovBuffer; 4],
    ) -> Result<c_int, Error> {
        let fns = self.context.fns;
        let mut conf_state: c_int = 0;
        let mut minor = 0;
        // SAFETY: the context is established and live; each buffer descriptor points to a
        // live `Vec` of exactly its length (the library writes within those lengths, which
        // gss_wrap_iov_length gave); four descriptors are passed, as counted.
        let major = unsafe {
            function(
                &mut minor,
                self.context.raw,
                1,
                0,
                &mut conf_state,
                buffers.as_mut_ptr(),
                4,
            )
        };
        if failed(major) {
            return Err(call_error(fns, major, minor));
        }
        Ok(conf_state)
    }

    /// Verify and decrypt a whole wrap token (`gss_unwrap`; the library undoes an RRC
    /// rotation).
    pub fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, Error> {
        let fns = self.context.fns;
        let input = Buffer::borrowing(token);
        let mut out = Buffer::EMPTY;
        let mut conf_state: c_int = 0;
        let mut minor = 0;
        // SAFETY: the context is live; `input` describes `token`, only read; `out` is released
        // by `take_buffer`; the QOP output is not asked for.
        let major = unsafe {
            (fns.unwrap)(
                &mut minor,
                self.context.raw,
                &input,
                &mut out,
                &mut conf_state,
                ptr::null_mut(),
            )
        };
        let plaintext = take_buffer(fns, &mut out);
        if failed(major) {
            return Err(call_error(fns, major, minor));
        }
        if conf_state == 0 {
            return Err(Error::NotEncrypted);
        }
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library that is not there is a clear error naming what to install.
    #[test]
    fn a_missing_library_names_the_package_to_install() {
        let Err(e) = Functions::load(&["/nonexistent/libgssapi_krb5.so.2"]) else {
            panic!("a missing file loaded");
        };
        let text = e.to_string();
        assert!(text.contains("libgssapi-krb5-2"), "{text}");
        assert!(text.contains("SALVE_GSSAPI_LIBRARY"), "{text}");
        assert!(text.contains("/nonexistent/libgssapi_krb5.so.2"), "{text}");
    }

    /// A library without the GSS-API is refused by name, before any call.
    #[test]
    fn a_library_without_the_functions_is_refused() {
        let Err(e) = Functions::load(&["libc.so.6"]) else {
            panic!("libc passed for the GSS-API");
        };
        assert!(e.to_string().contains("no gss_import_name"), "{e}");
    }

    /// The system's library loads, and its status texts are MIT's (what `salve doctor`
    /// reads). Needs `libgssapi_krb5.so.2`, which every machine with git has.
    #[test]
    fn the_system_library_loads_and_words_its_errors() {
        let fns = functions().expect("libgssapi_krb5.so.2 (Debian: libgssapi-krb5-2)");
        // GSS_S_NO_CRED (7 << 16).
        let Error::Call { text, .. } = call_error(fns, 7 << 16, 0) else {
            unreachable!()
        };
        assert!(text.contains("No credentials were supplied"), "{text}");
    }
}
