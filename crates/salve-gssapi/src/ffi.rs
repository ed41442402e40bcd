//! The C ABI of the GSS-API functions salve calls (RFC 2744 §3, and MIT's extensions
//! `gss_acquire_cred_with_password` and `gss_wrap_iov*` from `gssapi_ext.h`), declared by hand
//! as MIT Kerberos lays them out on Linux (natural alignment; MIT packs its structures only on
//! Apple), and the library they are looked up in, opened once per process at run time.

use std::ffi::{c_int, c_void};

pub(crate) type OmUint32 = u32;
pub(crate) type GssName = *mut c_void;
pub(crate) type GssCred = *mut c_void;
pub(crate) type GssCtx = *mut c_void;

/// `gss_buffer_desc`.
#[repr(C)]
pub(crate) struct Buffer {
    pub(crate) length: usize,
    pub(crate) value: *mut c_void,
}

impl Buffer {
    pub(crate) const EMPTY: Buffer = Buffer {
        length: 0,
        value: std::ptr::null_mut(),
    };

    /// A descriptor of `bytes`, for an input parameter (the library only reads it).
    pub(crate) fn borrowing(bytes: &[u8]) -> Buffer {
        Buffer {
            length: bytes.len(),
            value: bytes.as_ptr().cast_mut().cast(),
        }
    }
}

/// `gss_OID_desc`.
#[repr(C)]
pub(crate) struct Oid {
    pub(crate) length: OmUint32,
    pub(crate) elements: *mut c_void,
}

/// `gss_OID_set_desc`.
#[repr(C)]
pub(crate) struct OidSet {
    pub(crate) count: usize,
    pub(crate) elements: *mut Oid,
}

/// `struct gss_channel_bindings_struct`.
#[repr(C)]
pub(crate) struct ChannelBindings {
    pub(crate) initiator_addrtype: OmUint32,
    pub(crate) initiator_address: Buffer,
    pub(crate) acceptor_addrtype: OmUint32,
    pub(crate) acceptor_address: Buffer,
    pub(crate) application_data: Buffer,
}

/// `gss_iov_buffer_desc` (gssapi_ext.h).
#[repr(C)]
pub(crate) struct IovBuffer {
    pub(crate) kind: OmUint32,
    pub(crate) buffer: Buffer,
}

// Constants of gssapi.h / gssapi_ext.h.
pub(crate) const GSS_C_MUTUAL_FLAG: OmUint32 = 2;
pub(crate) const GSS_C_CONF_FLAG: OmUint32 = 16;
pub(crate) const GSS_C_INTEG_FLAG: OmUint32 = 32;
pub(crate) const GSS_C_INITIATE: c_int = 1;
pub(crate) const GSS_C_INDEFINITE: OmUint32 = 0xffff_ffff;
pub(crate) const GSS_C_GSS_CODE: c_int = 1;
pub(crate) const GSS_C_MECH_CODE: c_int = 2;
pub(crate) const GSS_S_CONTINUE_NEEDED: OmUint32 = 1;
/// Calling and routine error bits of a major status (`GSS_ERROR`).
pub(crate) const GSS_ERROR_MASK: OmUint32 = 0xffff_0000;
pub(crate) const IOV_DATA: OmUint32 = 1;
pub(crate) const IOV_HEADER: OmUint32 = 2;
pub(crate) const IOV_TRAILER: OmUint32 = 7;
pub(crate) const IOV_PADDING: OmUint32 = 9;

/// The Kerberos V5 mechanism, 1.2.840.113554.1.2.2 (RFC 1964), without its DER tag and length.
pub(crate) const MECH_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// `GSS_KRB5_NT_PRINCIPAL_NAME`, 1.2.840.113554.1.2.2.1 (RFC 1964 §2.1.1): `user@REALM`,
/// `HTTP/host@REALM`.
pub(crate) const NT_KRB5_PRINCIPAL: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];

/// A `gss_OID_desc` of `der` (input only: the library never writes through it).
pub(crate) fn oid(der: &'static [u8]) -> Oid {
    Oid {
        // The OIDs above are at most 10 bytes.
        length: der.len() as OmUint32,
        elements: der.as_ptr().cast_mut().cast(),
    }
}

type ImportName =
    unsafe extern "C" fn(*mut OmUint32, *const Buffer, *const Oid, *mut GssName) -> OmUint32;
type ReleaseName = unsafe extern "C" fn(*mut OmUint32, *mut GssName) -> OmUint32;
type AcquireCredWithPassword = unsafe extern "C" fn(
    *mut OmUint32,
    GssName,
    *const Buffer,
    OmUint32,
    *const OidSet,
    c_int,
    *mut GssCred,
    *mut *mut OidSet,
    *mut OmUint32,
) -> OmUint32;
type ReleaseCred = unsafe extern "C" fn(*mut OmUint32, *mut GssCred) -> OmUint32;
type InquireCred = unsafe extern "C" fn(
    *mut OmUint32,
    GssCred,
    *mut GssName,
    *mut OmUint32,
    *mut c_int,
    *mut *mut OidSet,
) -> OmUint32;
type InitSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    GssCred,
    *mut GssCtx,
    GssName,
    *const Oid,
    OmUint32,
    OmUint32,
    *const ChannelBindings,
    *const Buffer,
    *mut *mut Oid,
    *mut Buffer,
    *mut OmUint32,
    *mut OmUint32,
) -> OmUint32;
type DeleteSecContext = unsafe extern "C" fn(*mut OmUint32, *mut GssCtx, *mut Buffer) -> OmUint32;
type ReleaseBuffer = unsafe extern "C" fn(*mut OmUint32, *mut Buffer) -> OmUint32;
type DisplayStatus = unsafe extern "C" fn(
    *mut OmUint32,
    OmUint32,
    c_int,
    *const Oid,
    *mut OmUint32,
    *mut Buffer,
) -> OmUint32;
pub(crate) type WrapIov = unsafe extern "C" fn(
    *mut OmUint32,
    GssCtx,
    c_int,
    OmUint32,
    *mut c_int,
    *mut IovBuffer,
    c_int,
) -> OmUint32;
type Unwrap = unsafe extern "C" fn(
    *mut OmUint32,
    GssCtx,
    *const Buffer,
    *mut Buffer,
    *mut c_int,
    *mut OmUint32,
) -> OmUint32;

/// The functions of the loaded library. The pointers stay valid while `_library` is loaded,
/// which is for the whole process (the one instance lives in a `static`).
pub(crate) struct Functions {
    pub(crate) import_name: ImportName,
    pub(crate) release_name: ReleaseName,
    pub(crate) acquire_cred_with_password: AcquireCredWithPassword,
    pub(crate) release_cred: ReleaseCred,
    pub(crate) inquire_cred: InquireCred,
    pub(crate) init_sec_context: InitSecContext,
    pub(crate) delete_sec_context: DeleteSecContext,
    pub(crate) release_buffer: ReleaseBuffer,
    pub(crate) display_status: DisplayStatus,
    pub(crate) wrap_iov_length: WrapIov,
    pub(crate) wrap_iov: WrapIov,
    pub(crate) unwrap: Unwrap,
    _library: libloading::Library,
}

/// The file names tried, in order, when `SALVE_GSSAPI_LIBRARY` is not set: MIT Kerberos'
/// GSS-API library (Debian/Ubuntu `libgssapi-krb5-2`, RHEL/Fedora `krb5-libs`, installed
/// wherever git or curl is, as libcurl links it), then its development symlink.
pub const LIBRARY_NAMES: &[&str] = &["libgssapi_krb5.so.2", "libgssapi_krb5.so"];

/// Why the GSS-API library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "Kerberos needs MIT Kerberos' GSS-API library, and {tried} could not be loaded ({source}); \
         install it (Debian/Ubuntu: `apt-get install libgssapi-krb5-2`; RHEL/Fedora: `dnf install \
         krb5-libs`), or name the library file in SALVE_GSSAPI_LIBRARY"
    )]
    Missing {
        tried: String,
        #[source]
        source: libloading::Error,
    },
    #[error(
        "{path} is not a usable MIT GSS-API library: it has no {symbol} ({source}); salve needs \
         MIT Kerberos 1.14 or later (`libgssapi_krb5.so.2`)"
    )]
    Symbol {
        path: String,
        symbol: &'static str,
        #[source]
        source: libloading::Error,
    },
}

impl Functions {
    /// Open the first of `names` that loads and look every function up in it.
    pub(crate) fn load(names: &[&str]) -> Result<Functions, LoadError> {
        let mut last = None;
        for name in names {
            // SAFETY: loading MIT's libgssapi_krb5 runs its initialisers, which only set up
            // the library's own state (error tables, mutexes); it is the library a C program
            // linked with `-lgssapi_krb5` gets. A file of another kind fails the symbol
            // lookups below before any of its code is called by us.
            match unsafe { libloading::Library::new(name) } {
                Ok(library) => return Self::resolve(name, library),
                Err(e) => last = Some(e),
            }
        }
        Err(LoadError::Missing {
            tried: names.join(", "),
            source: last.unwrap_or(libloading::Error::DlOpenUnknown),
        })
    }

    fn resolve(path: &str, library: libloading::Library) -> Result<Functions, LoadError> {
        macro_rules! get {
            ($name:literal) => {{
                // SAFETY: the type each symbol is read as is its prototype in MIT's
                // gssapi.h/gssapi_ext.h (see the aliases above), and the copied pointer is
                // only called while `library` is loaded (it moves into the same struct).
                let symbol = unsafe { library.get(concat!($name, "\0").as_bytes()) };
                *symbol.map_err(|source| LoadError::Symbol {
                    path: path.to_string(),
                    symbol: $name,
                    source,
                })?
            }};
        }
        Ok(Functions {
            import_name: get!("gss_import_name"),
            release_name: get!("gss_release_name"),
            acquire_cred_with_password: get!("gss_acquire_cred_with_password"),
            release_cred: get!("gss_release_cred"),
            inquire_cred: get!("gss_inquire_cred"),
            init_sec_context: get!("gss_init_sec_context"),
            delete_sec_context: get!("gss_delete_sec_context"),
            release_buffer: get!("gss_release_buffer"),
            display_status: get!("gss_display_status"),
            wrap_iov_length: get!("gss_wrap_iov_length"),
            wrap_iov: get!("gss_wrap_iov"),
            unwrap: get!("gss_unwrap"),
            _library: library,
        })
    }
}
