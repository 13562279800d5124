//! What a Wasm component says about itself: its top-level imports and exports, size, the
//! `producers` section (toolchains), and custom sections such as `cargo auditable`'s.

use serde::Serialize;
use wasmparser::{Encoding, KnownCustom, Parser, Payload};

/// What was wrong with the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Not parseable WebAssembly.
    #[error("invalid WebAssembly at byte {offset}: {message}")]
    Invalid {
        /// Byte offset.
        offset: usize,
        /// The parser's message.
        message: String,
    },
}

impl From<wasmparser::BinaryReaderError> for InspectError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        InspectError::Invalid {
            offset: e.offset(),
            message: e.message().to_string(),
        }
    }
}

/// One `producers` field value (`language: Rust 1.95`, `processed-by: wit-component 0.2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Producer {
    /// `language`, `processed-by` or `sdk`.
    pub field: String,
    /// Tool or language name.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// A summary of a component (or core module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// `component` or `module`.
    pub kind: &'static str,
    /// Size in bytes.
    pub size: usize,
    /// Top-level import names (`wasi:http/types@0.2.0`; `module/name` for core modules).
    pub imports: Vec<String>,
    /// Top-level export names.
    pub exports: Vec<String>,
    /// `producers` entries of the outermost component and every nested module, deduplicated.
    pub producers: Vec<Producer>,
    /// Names of all custom sections, in order (nested ones included).
    pub custom_sections: Vec<String>,
}

/// Reads the top level of a component or module. Nested modules and components are
/// walked only for their `producers` and custom-section names.
pub fn inspect_component(bytes: &[u8]) -> Result<ComponentInfo, InspectError> {
    let mut info = ComponentInfo {
        kind: "module",
        size: bytes.len(),
        imports: Vec::new(),
        exports: Vec::new(),
        producers: Vec::new(),
        custom_sections: Vec::new(),
    };
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Component {
                    info.kind = "component";
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    info.imports.push(import?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    info.exports.push(export?.name.name.to_string());
                }
            }
            Payload::ImportSection(reader) if depth == 1 => {
                for import in reader.into_imports() {
                    let import = import?;
                    info.imports
                        .push(format!("{}/{}", import.module, import.name));
                }
            }
            Payload::ExportSection(reader) if depth == 1 => {
                for export in reader {
                    info.exports.push(export?.name.to_string());
                }
            }
            Payload::CustomSection(reader) => {
                info.custom_sections.push(reader.name().to_string());
                if let KnownCustom::Producers(producers) = reader.as_known() {
                    for field in producers {
                        let field = field?;
                        for value in field.values {
                            let value = value?;
                            let p = Producer {
                                field: field.name.to_string(),
                                name: value.name.to_string(),
                                version: value.version.to_string(),
                            };
                            if !info.producers.contains(&p) {
                                info.producers.push(p);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// The data of the first custom section called `name`, at any nesting depth (cargo
/// auditable puts `.dep-v0` in the core module that a component wraps).
pub fn custom_section(bytes: &[u8], name: &str) -> Result<Option<Vec<u8>>, InspectError> {
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::CustomSection(reader) = payload?
            && reader.name() == name
        {
            return Ok(Some(reader.data().to_vec()));
        }
    }
    Ok(None)
}
