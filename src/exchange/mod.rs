//! What salve knows about Exchange: build numbers, the CU/SU/CVE catalogue, remediation paths,
//! and the PowerShell scripts shipped for facts, mitigation, updates and IOC scans.
