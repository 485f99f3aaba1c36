//! `enforce.generate:` of a policy.

use serde_saphyr::Spanned;

use super::{Decoder, Node};
use crate::policy::generate::{ALPHABETS, Generator};

const GENERATE_FIELDS: &[&str] = &["field", "length", "alphabet", "characters"];

impl Decoder<'_> {
    /// `generate: {field, length, alphabet | characters}`.
    pub(super) fn generator(&mut self, node: &Spanned<Node>) -> Option<Generator> {
        let before = self.diagnostics.len();
        let fields = self.fields(node, "`generate`", GENERATE_FIELDS)?;
        let field = self
            .required(
                &fields,
                "field",
                " (the secret's field that gets the new value)",
            )
            .and_then(|node| self.string(node, "field"));
        if let Some(field) = &field
            && field.value.trim().is_empty()
        {
            self.error(&field.referenced, "`field` must not be empty");
        }
        let length = self
            .required(&fields, "length", "")
            .and_then(|node| self.whole_number(node, "length", 8, 4096));
        let characters = match (fields.get("alphabet"), fields.get("characters")) {
            (Some(_), Some(node)) => {
                self.error(
                    &node.referenced,
                    "give either `alphabet` or `characters`, not both",
                );
                None
            }
            (Some(node), None) => self.string(node, "alphabet").and_then(|name| {
                let found = ALPHABETS.iter().find(|(it, _)| *it == name.value.trim());
                if found.is_none() {
                    let names: Vec<&str> = ALPHABETS.iter().map(|(it, _)| *it).collect();
                    self.error(
                        &name.referenced,
                        format!(
                            "unknown alphabet `{}`, expected one of: {}",
                            name.value,
                            names.join(", ")
                        ),
                    );
                }
                found.map(|(_, it)| (*it).to_owned())
            }),
            (None, Some(node)) => self.string(node, "characters").map(|it| it.value),
            (None, None) => Some(ALPHABETS[0].1.to_owned()),
        };
        let generator = Generator {
            field: field?.value.trim().to_owned(),
            length: length?,
            characters: characters?,
        };
        if let Some(problem) = generator.problem() {
            self.error(&node.referenced, format!("`generate`: {problem}"));
        }
        (self.diagnostics.len() == before).then_some(generator)
    }
}
