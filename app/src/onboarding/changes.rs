//! What a change set changes in a service's spec, field by field, for the preview and the
//! approval page: lists of named things (ports, env, secrets) compare by name, other lists as
//! a whole, and the justification (why, not what) is left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field that differs between the live spec and the proposed one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SpecDifference {
    /// For example `image`, `allowed_callers` or `secrets[api_key]`.
    pub field: String,
    /// The live value (compact JSON); `None` when the field is added.
    pub from: Option<String>,
    /// The proposed value; `None` when the field is removed.
    pub to: Option<String>,
}

/// The fields that differ from `live` to `proposed` (specs as stored, without secret values).
pub fn spec_differences(live: &Value, proposed: &Value) -> Vec<SpecDifference> {
    let (live, proposed) = (flatten(live), flatten(proposed));
    let mut fields: Vec<&String> = live.keys().chain(proposed.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|field| live.get(*field) != proposed.get(*field))
        .map(|field| SpecDifference {
            field: field.clone(),
            from: live.get(field).cloned(),
            to: proposed.get(field).cloned(),
        })
        .collect()
}

/// The spec as `field → compact JSON`, one level deep; named list items get their own field.
fn flatten(spec: &Value) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let Some(object) = spec.as_object() else { return fields };
    for (key, value) in object {
        if key == "justification" || value.is_null() {
            continue;
        }
        let named: Option<Vec<(&str, &Value)>> = value.as_array().and_then(|items| {
            items.iter().map(|item| Some((item.get("name")?.as_str()?, item))).collect()
        });
        match named {
            Some(items) if !items.is_empty() => {
                for (name, item) in items {
                    fields.insert(format!("{key}[{name}]"), item.to_string());
                }
            }
            _ => {
                fields.insert(key.clone(), value.to_string());
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_items_compare_by_name_and_the_justification_is_left_out() {
        let live = json!({
            "image": "shop/cart:1", "justification": "first", "allowed_callers": ["frontend"],
            "secrets": [{ "name": "db_password", "source": { "kind": "generate" } }],
        });
        let proposed = json!({
            "image": "shop/cart:2", "justification": "second",
            "allowed_callers": ["frontend", "checkout"],
            "secrets": [
                { "name": "db_password", "source": { "kind": "generate" } },
                { "name": "api_key", "source": { "kind": "existing" } },
            ],
        });
        let fields: Vec<String> =
            spec_differences(&live, &proposed).into_iter().map(|d| d.field).collect();
        assert_eq!(fields, ["allowed_callers", "image", "secrets[api_key]"]);
        let removed = spec_differences(&proposed, &live);
        let api_key = removed.iter().find(|d| d.field == "secrets[api_key]").unwrap();
        assert!(api_key.from.is_some() && api_key.to.is_none());
        assert!(spec_differences(&live, &live).is_empty());
    }
}
