//! Ports of cloud-hypervisor's `option_parser/src/lib.rs`: the two
//! generations reference `hypervisors.md` §3.2 describes (v26–v47, v48+),
//! checked against the source text of both, plus an earlier quote-unaware
//! `split_commas` found in the project's history. These are test oracles:
//! they must behave like cloud-hypervisor, bugs included.

use std::collections::HashMap;

/// `PlatformConfig::parse`'s keys (reference §3.1).
pub const KEYS: &[&str] = &[
    "num_pci_segments",
    "iommu_segments",
    "iommu_address_width",
    "serial_number",
    "uuid",
    "oem_strings",
    "iommufd",
    "iommufd_fd",
    "vfio_p2p_dma",
    "system_manufacturer",
    "system_product_name",
    "system_version",
    "system_serial_number",
    "system_uuid",
    "system_sku_number",
    "system_family",
    "chassis_asset_tag",
    "tdx",
    "sev_snp",
];

/// A parser generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gen {
    /// The oldest `split_commas` with `StringList` (found in cloud-hypervisor's
    /// history; the reference does not date it): brackets are counted,
    /// `"` is an ordinary character, lists split on every comma.
    Early,
    /// v26.0–v47.x: quotes dropped at the top level, lists split on every comma.
    V26,
    /// v48.0+ (commit 98253973): bracket/quote-aware, quotes kept.
    V48,
}

pub const GENS: [Gen; 3] = [Gen::Early, Gen::V26, Gen::V48];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    UnknownOption(String),
    InvalidSyntax(String),
    Conversion(String, String),
    InvalidValue(String),
}

/// The early `split_commas`: only brackets are special.
pub fn split_commas_early(s: &str) -> Result<Vec<String>, Error> {
    let mut list = Vec::new();
    let mut opened_brackets: i64 = 0;
    let mut current = String::new();
    for c in s.trim().chars() {
        match c {
            '[' => {
                opened_brackets += 1;
                current.push('[');
            }
            ']' => {
                opened_brackets -= 1;
                if opened_brackets < 0 {
                    return Err(Error::InvalidSyntax(s.to_owned()));
                }
                current.push(']');
            }
            ',' => {
                if opened_brackets > 0 {
                    current.push(',')
                } else {
                    list.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    list.push(current);
    if opened_brackets != 0 {
        return Err(Error::InvalidSyntax(s.to_owned()));
    }
    Ok(list)
}

/// v26–v47 `split_commas`: `"` toggles quoting and is dropped; `[` `]`
/// are counted (even inside quotes) and kept.
pub fn split_commas_v26(s: &str) -> Result<Vec<String>, Error> {
    let mut list = Vec::new();
    let mut opened_brackets: i64 = 0;
    let mut in_quotes = false;
    let mut current = String::new();
    for c in s.trim().chars() {
        match c {
            '[' => {
                opened_brackets += 1;
                current.push('[');
            }
            ']' => {
                opened_brackets -= 1;
                if opened_brackets < 0 {
                    return Err(Error::InvalidSyntax(s.to_owned()));
                }
                current.push(']');
            }
            '"' => in_quotes = !in_quotes,
            ',' => {
                if opened_brackets > 0 || in_quotes {
                    current.push(',')
                } else {
                    list.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    list.push(current);
    if opened_brackets != 0 || in_quotes {
        return Err(Error::InvalidSyntax(s.to_owned()));
    }
    Ok(list)
}

/// v48+ `split_commas`: in quotes only `"` is special; every character
/// except a splitting `,` is kept.
pub fn split_commas_v48(s: &str) -> Result<Vec<String>, Error> {
    let mut list = Vec::new();
    let mut opened_brackets = 0u64;
    let mut in_quotes = false;
    let mut current = String::new();
    for c in s.trim().chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            _ if in_quotes => {}
            '[' => opened_brackets += 1,
            ']' => {
                if opened_brackets < 1 {
                    return Err(Error::InvalidSyntax(s.to_owned()));
                }
                opened_brackets -= 1;
            }
            ',' if opened_brackets == 0 => {
                list.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    list.push(current);
    if in_quotes || opened_brackets != 0 {
        return Err(Error::InvalidSyntax(s.to_owned()));
    }
    Ok(list)
}

fn trim_brackets(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '[' || c == ']')
}

/// `StringList::from_str`.
pub fn string_list(gen: Gen, s: &str) -> Result<Vec<String>, Error> {
    match gen {
        Gen::Early | Gen::V26 => Ok(trim_brackets(s).split(',').map(str::to_owned).collect()),
        Gen::V48 => split_commas_v48(trim_brackets(s))
            .map_err(|_| Error::Conversion("oem_strings".into(), s.to_owned())),
    }
}

/// v48 `dequote`, applied by `get()` to scalar values.
pub fn dequote(s: &str) -> String {
    let mut prev = '\0';
    let mut in_quotes = false;
    let mut out = String::new();
    for c in s.chars() {
        if c == '"' {
            if prev == '"' && !in_quotes {
                out.push('"');
            }
            in_quotes = !in_quotes;
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// `OptionParser::parse` with the platform keys: key → raw value (the
/// last occurrence wins, as in cloud-hypervisor).
pub fn parse(gen: Gen, input: &str) -> Result<HashMap<String, String>, Error> {
    parse_with(gen, input, KEYS)
}

/// `OptionParser::parse` with the options `keys` registered.
pub fn parse_with(gen: Gen, input: &str, keys: &[&str]) -> Result<HashMap<String, String>, Error> {
    let mut m = HashMap::new();
    if input.trim().is_empty() {
        return Ok(m);
    }
    let options = match gen {
        Gen::Early => split_commas_early(input)?,
        Gen::V26 => split_commas_v26(input)?,
        Gen::V48 => split_commas_v48(input)?,
    };
    for option in options {
        let parts: Vec<&str> = option.splitn(2, '=').collect();
        if !keys.contains(&parts[0]) {
            return Err(Error::UnknownOption(parts[0].to_owned()));
        }
        if parts.len() != 2 {
            return Err(Error::InvalidSyntax(option.clone()));
        }
        m.insert(parts[0].to_owned(), parts[1].trim().to_owned());
    }
    Ok(m)
}

/// `convert::<StringList>("oem_strings")`: `None` when unset or empty.
pub fn oem_strings(gen: Gen, input: &str) -> Result<Option<Vec<String>>, Error> {
    let m = parse(gen, input)?;
    match m.get("oem_strings") {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => string_list(gen, v).map(Some),
    }
}

/// `get(key)` for a scalar key.
pub fn get(gen: Gen, input: &str, key: &str) -> Result<Option<String>, Error> {
    let m = parse(gen, input)?;
    Ok(m.get(key).filter(|v| !v.is_empty()).map(|v| match gen {
        Gen::Early | Gen::V26 => v.clone(),
        Gen::V48 => dequote(v),
    }))
}

/// One fw_cfg item: `name`, and its `file` or `string`.
pub type FwCfgItem = (String, Option<String>, Option<String>);

/// `FwCfgConfig::parse`'s options (`vmm/src/vm_config/fw_cfg_config.rs`, v53.0).
pub const FW_CFG_KEYS: &[&str] = &[
    "e820",
    "kernel",
    "cmdline",
    "initramfs",
    "acpi_table",
    "items",
];

/// `FwCfgConfig::parse` then `FwCfgItemList::from_str` and `FwCfgItem::parse`
/// for each item (fw_cfg exists only in the v48+ parser generation): the
/// `--fw-cfg-config` value's items as (name, file, string). The list is
/// `items=[...]` stripped of its brackets and split on every `:`; each item is
/// an option string of `name`, `file`, `string`, read with `get` (dequoted).
pub fn fw_cfg_items(input: &str) -> Result<Vec<FwCfgItem>, Error> {
    let top = parse_with(Gen::V48, input, FW_CFG_KEYS)?;
    let Some(list) = top.get("items") else {
        return Ok(Vec::new());
    };
    let body = list
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| Error::InvalidValue(list.clone()))?;
    let mut out = Vec::new();
    for item in body.split(':') {
        let m = parse_with(Gen::V48, item, &["name", "file", "string"])?;
        let name = m
            .get("name")
            .map(|v| dequote(v))
            .ok_or_else(|| Error::InvalidValue("missing FwCfgItem name".into()))?;
        out.push((
            name,
            m.get("file").map(|v| dequote(v)),
            m.get("string").map(|v| dequote(v)),
        ));
    }
    Ok(out)
}
