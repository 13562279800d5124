//! A structural look at an untrusted component before anything compiles it.
//!
//! This only reads section headers (wasmparser is built for hostile input); full validation
//! happens during compilation in the jailed child, and the exact types are checked when the
//! node pre-instantiates the compiled component against its linker.

use wasmparser::{Encoding, Parser, Payload};

/// The interface every function must export.
pub const HANDLER_INTERFACE: &str = "wasi:http/incoming-handler";

/// Packages the node links: WASI 0.2 and the capabilities (what is not granted is denied
/// at call time).
const LINKED_PACKAGES: &[&str] = &[
    "wasi:cli",
    "wasi:clocks",
    "wasi:config",
    "wasi:filesystem",
    "wasi:http",
    "wasi:io",
    "wasi:keyvalue",
    "wasi:random",
    "wasi:sockets",
];

/// Why a component cannot be deployed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not export `{HANDLER_INTERFACE}` (WASI 0.2); it exports {0}")]
    NoHandler(String),
    #[error("the component imports `{0}`, which this node does not provide")]
    UnknownImport(String),
}

/// What a component declares at its top level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentInfo {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size: usize,
}

/// Checks that `bytes` is a component exporting the HTTP handler and importing only what the
/// node links.
pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo, InspectError> {
    let mut info = ComponentInfo {
        size: bytes.len(),
        ..Default::default()
    };
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InspectError::NotAComponent(e.message().to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Err(InspectError::NotAComponent(
                        "this is a core module; build a component (e.g. target wasm32-wasip2)"
                            .into(),
                    ));
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import =
                        import.map_err(|e| InspectError::NotAComponent(e.message().to_string()))?;
                    info.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export =
                        export.map_err(|e| InspectError::NotAComponent(e.message().to_string()))?;
                    info.exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    if depth != 0 || info.size == 0 {
        return Err(InspectError::NotAComponent("truncated".into()));
    }
    if !info
        .exports
        .iter()
        .any(|e| is_wasi_02(e, HANDLER_INTERFACE))
    {
        let found = if info.exports.is_empty() {
            "nothing".to_string()
        } else {
            info.exports
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(InspectError::NoHandler(found));
    }
    if let Some(unknown) = info.imports.iter().find(|i| !is_linked(i)) {
        return Err(InspectError::UnknownImport(unknown.clone()));
    }
    Ok(info)
}

/// `name` is `interface` at some WASI 0.2.x version.
fn is_wasi_02(name: &str, interface: &str) -> bool {
    name.strip_prefix(interface)
        .and_then(|rest| rest.strip_prefix("@0.2."))
        .is_some_and(|patch| !patch.is_empty())
}

fn is_linked(import: &str) -> bool {
    let Some((package_and_interface, version)) = import.split_once('@') else {
        return false;
    };
    let Some((package, interface)) = package_and_interface.split_once('/') else {
        return false;
    };
    !interface.is_empty() && version.starts_with("0.2.") && LINKED_PACKAGES.contains(&package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_component() {
        assert!(matches!(inspect(b""), Err(InspectError::NotAComponent(_))));
        assert!(matches!(
            inspect(b"hello, world"),
            Err(InspectError::NotAComponent(_))
        ));
        let module = wat::parse_str("(module)").unwrap();
        let e = inspect(&module).unwrap_err();
        assert!(e.to_string().contains("core module"), "{e}");
    }

    #[test]
    fn requires_the_handler_export() {
        let c = wat::parse_str("(component)").unwrap();
        assert_eq!(inspect(&c), Err(InspectError::NoHandler("nothing".into())));
    }

    #[test]
    fn names_an_unknown_import() {
        let c = wat::parse_str(
            r#"(component
                (import "fermyon:spin/key-value@2.0.0" (instance))
                (instance $h)
                (export "wasi:http/incoming-handler@0.2.6" (instance $h)))"#,
        )
        .unwrap();
        assert_eq!(
            inspect(&c),
            Err(InspectError::UnknownImport(
                "fermyon:spin/key-value@2.0.0".into()
            ))
        );
    }

    #[test]
    fn accepts_linked_imports() {
        let c = wat::parse_str(
            r#"(component
                (import "wasi:cli/environment@0.2.3" (instance))
                (import "wasi:http/types@0.2.12" (instance))
                (instance $h)
                (export "wasi:http/incoming-handler@0.2.12" (instance $h)))"#,
        )
        .unwrap();
        let info = inspect(&c).unwrap();
        assert_eq!(info.imports.len(), 2);
        assert!(is_linked("wasi:sockets/tcp@0.2.0"));
        assert!(!is_linked("wasi:sockets/tcp@0.3.0"));
        assert!(is_linked("wasi:keyvalue/store@0.2.0-draft") && !is_linked("foo"));
    }
}
