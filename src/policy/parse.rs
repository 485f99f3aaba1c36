//! Policy files → checked [`Policy`] values, collecting every error with its place.
//!
//! A file is first read into a [`Node`] tree that keeps each value's location and imposes no types,
//! so only YAML syntax errors (and repeated keys) stop a file. The tree is then decoded field by
//! field: every unknown field, value of the wrong type, missing field and invalid value is reported,
//! and decoding goes on with the next field and the next policy.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use chrono::TimeDelta;
use keywarden_connector::{CredentialKind, CredentialStatus, ParseKindError};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::{
    ActionKind, Approval, Conditions, Enforcement, IdentityCondition, KindSet, Mode, Origin,
    Patterns, Policy, Schedule, Selector, Severity, StatusSet, Threshold,
};
use crate::diagnostic::{Diagnostic, parse_yaml};

mod generate;

const FILE_FIELDS: &[&str] = &["pack", "description", "policies"];
const POLICY_FIELDS: &[&str] = &[
    "id",
    "description",
    "severity",
    "mode",
    "schedule",
    "select",
    "when",
    "actions",
    "enforce",
];
const ENFORCE_FIELDS: &[&str] = &[
    "approval",
    "max_actions_per_run",
    "halt_share",
    "delete_hold",
    "retry",
    "generate",
];
const RETRY_FIELDS: &[&str] = &["attempts", "backoff"];
const SELECT_FIELDS: &[&str] = &[
    "sources",
    "kinds",
    "names",
    "identities",
    "purposes",
    "tags",
];
const WHEN_FIELDS: &[&str] = &[
    "age_over",
    "unused_for",
    "never_used_and_older_than",
    "expires_within",
    "expired",
    "status",
    "owner_missing",
    "tags_missing",
    "identity_credentials",
];
const IDENTITY_FIELDS: &[&str] = &["kinds", "status", "more_than"];
const DURATION_HINT: &str = "expected e.g. 90d, 12h, 2w, 30m";
const CRON_HINT: &str = "expected 5 fields `minute hour day-of-month month day-of-week` \
    (e.g. \"0 6 * * *\"), 6 or 7 fields with seconds first (and a year last), or @daily etc.";

/// What one file yields: its valid policies, the ids of all policies (valid or not, for duplicate
/// checks), and its errors.
pub(super) struct ParsedFile {
    pub policies: Vec<Policy>,
    pub ids: Vec<Spanned<String>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and checks one file. Pure.
pub(super) fn parse_file(file: &Path, text: &str) -> ParsedFile {
    let mut parsed = ParsedFile {
        policies: Vec::new(),
        ids: Vec::new(),
        diagnostics: Vec::new(),
    };
    let root = match parse_yaml::<Spanned<Node>>(file, text) {
        Ok(root) => root,
        Err(diagnostic) => {
            parsed.diagnostics.push(diagnostic);
            return parsed;
        }
    };
    if matches!(root.value, Node::Null) {
        parsed.diagnostics.push(Diagnostic::file(
            file,
            "policy file is empty, expected a mapping with a `policies:` list",
        ));
        return parsed;
    }
    let mut decoder = Decoder {
        file,
        source: text,
        diagnostics: Vec::new(),
    };
    decoder.file_root(&root, &mut parsed.policies, &mut parsed.ids);
    parsed.diagnostics = decoder.diagnostics;
    parsed
}

/// A YAML value as written, with no type imposed yet.
#[derive(Debug)]
pub(super) enum Node {
    Null,
    Bool(bool),
    /// A number, as formatted by Rust; a string field takes the text from the source instead.
    Number(String),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// What this is, for "expected X, found Y".
    fn describe(&self) -> &'static str {
        match self {
            Self::Null => "nothing",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::Str(_) => "a string",
            Self::Seq(_) => "a list",
            Self::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Number(value.to_string()))
    }

    fn visit_i128<E>(self, value: i128) -> Result<Node, E> {
        Ok(Node::Number(value.to_string()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Number(value.to_string()))
    }

    fn visit_u128<E>(self, value: u128) -> Result<Node, E> {
        Ok(Node::Number(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
        Ok(Node::Number(value.to_string()))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(Node::Str(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Node, E> {
        Ok(Node::Str(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

/// The entries of one mapping, already checked for unknown keys.
struct Fields<'n> {
    /// Where the mapping is.
    at: Location,
    /// What it is, for messages: `policy \`x\``, `select`.
    what: String,
    entries: &'n [(Spanned<String>, Spanned<Node>)],
}

impl<'n> Fields<'n> {
    /// The entry (key and value) named `name`.
    fn entry(&self, name: &str) -> Option<&'n (Spanned<String>, Spanned<Node>)> {
        self.entries.iter().find(|(key, _)| key.value == name)
    }

    /// The value named `name`.
    fn get(&self, name: &str) -> Option<&'n Spanned<Node>> {
        self.entry(name).map(|(_, value)| value)
    }
}

/// Decodes nodes into typed values, collecting diagnostics instead of stopping at the first.
struct Decoder<'a> {
    file: &'a Path,
    source: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Decoder<'_> {
    fn error(&mut self, at: &Location, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::at(self.file, at, message));
    }

    /// The entries of a mapping, reporting keys not in `known`. An empty value (`select:`) reads
    /// as an empty mapping.
    fn fields<'n>(
        &mut self,
        node: &'n Spanned<Node>,
        what: &str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        let entries: &'n [_] = match &node.value {
            Node::Map(entries) => entries,
            Node::Null => &[],
            other => {
                self.error(
                    &node.referenced,
                    format!("expected a mapping for {what}, found {}", other.describe()),
                );
                return None;
            }
        };
        for (key, _) in entries {
            if !known.contains(&key.value.as_str()) {
                self.error(
                    &key.referenced,
                    format!(
                        "unknown field `{}` in {what}, expected one of: {}",
                        key.value,
                        known.join(", ")
                    ),
                );
            }
        }
        Some(Fields {
            at: node.referenced,
            what: what.to_owned(),
            entries,
        })
    }

    /// A required field's value; reports it missing at the mapping.
    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        name: &str,
        hint: &str,
    ) -> Option<&'n Spanned<Node>> {
        let value = fields.get(name);
        if value.is_none() {
            let at = fields.at;
            let message = format!("missing field `{name}` in {}{hint}", fields.what);
            self.error(&at, message);
        }
        value
    }

    /// A string. Booleans and numbers are taken as written (`id: 2024` is the string `2024`).
    fn string(&mut self, node: &Spanned<Node>, name: &str) -> Option<Spanned<String>> {
        let text = match &node.value {
            Node::Str(text) => text.clone(),
            Node::Bool(_) | Node::Number(_) => self.source_text(node),
            other => {
                self.error(
                    &node.referenced,
                    format!("expected a string for `{name}`, found {}", other.describe()),
                );
                return None;
            }
        };
        Some(Spanned::new(text, node.referenced, node.defined))
    }

    /// The source text of a plain scalar, or its formatted value where the source has no span.
    fn source_text(&self, node: &Spanned<Node>) -> String {
        let span = node.defined.span();
        let raw = span
            .byte_offset()
            .zip(span.byte_len())
            .and_then(|(start, len)| {
                let start = usize::try_from(start).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                self.source.get(start..end)
            });
        match (raw, &node.value) {
            (Some(raw), _) => raw.to_owned(),
            (None, Node::Bool(value)) => value.to_string(),
            (None, Node::Number(text) | Node::Str(text)) => text.clone(),
            (None, _) => String::new(),
        }
    }

    /// A non-empty list of strings.
    fn strings(&mut self, node: &Spanned<Node>, name: &str) -> Option<Vec<Spanned<String>>> {
        let Node::Seq(items) = &node.value else {
            self.error(
                &node.referenced,
                format!(
                    "expected a list for `{name}` (e.g. [a, b]), found {}",
                    node.value.describe()
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                &node.referenced,
                format!("`{name}` is an empty list; give at least one value or leave it out"),
            );
            return None;
        }
        let before = self.diagnostics.len();
        let strings: Vec<_> = items
            .iter()
            .filter_map(|item| self.string(item, name))
            .collect();
        (self.diagnostics.len() == before).then_some(strings)
    }

    fn bool(&mut self, node: &Spanned<Node>, name: &str) -> Option<bool> {
        match &node.value {
            Node::Bool(value) => Some(*value),
            other => {
                self.error(
                    &node.referenced,
                    format!(
                        "expected true or false for `{name}`, found {}",
                        other.describe()
                    ),
                );
                None
            }
        }
    }

    /// A closed-enum name; the error lists the names expected.
    fn name<T: FromStr<Err = ParseKindError>>(&mut self, text: &Spanned<String>) -> Option<T> {
        match text.value.parse() {
            Ok(value) => Some(value),
            Err(err) => {
                self.error(&text.referenced, err.to_string());
                None
            }
        }
    }

    /// Several closed-enum names, all checked.
    fn names<T: FromStr<Err = ParseKindError>>(
        &mut self,
        node: &Spanned<Node>,
        field: &str,
    ) -> Option<Vec<T>> {
        let texts = self.strings(node, field)?;
        let before = self.diagnostics.len();
        let values: Vec<_> = texts.iter().filter_map(|text| self.name(text)).collect();
        (self.diagnostics.len() == before).then_some(values)
    }

    fn patterns(&mut self, node: &Spanned<Node>, field: &str) -> Option<Patterns> {
        let texts = self.strings(node, field)?;
        let before = self.diagnostics.len();
        for text in &texts {
            if let Err(err) = Patterns::new(std::slice::from_ref(&text.value)) {
                self.error(&text.referenced, format!("{err} in `{field}`"));
            }
        }
        if self.diagnostics.len() != before {
            return None;
        }
        let texts: Vec<&str> = texts.iter().map(|text| text.value.as_str()).collect();
        match Patterns::new(&texts) {
            Ok(patterns) => Some(patterns),
            Err(err) => {
                self.error(&node.referenced, format!("{err} in `{field}`"));
                None
            }
        }
    }

    fn threshold(&mut self, node: &Spanned<Node>, field: &str) -> Option<Threshold> {
        let text = self.string(node, field)?;
        match parse_duration(&text.value) {
            Ok(duration) => Some(Threshold {
                text: text.value,
                duration,
            }),
            Err(reason) => {
                self.error(
                    &text.referenced,
                    format!(
                        "invalid duration `{}` for `{field}`: {reason}; {DURATION_HINT}",
                        text.value
                    ),
                );
                None
            }
        }
    }

    fn schedule(&mut self, node: &Spanned<Node>) -> Option<Schedule> {
        let text = self.string(node, "schedule")?;
        match super::schedule::parse_cron(&text.value) {
            Ok(cron) => Some(Schedule {
                text: text.value,
                cron,
            }),
            Err(reason) => {
                self.error(
                    &text.referenced,
                    format!(
                        "invalid cron expression `{}`: {reason}; {CRON_HINT}",
                        text.value
                    ),
                );
                None
            }
        }
    }

    /// The whole file: `pack`, `description`, `policies`.
    fn file_root(
        &mut self,
        root: &Spanned<Node>,
        policies: &mut Vec<Policy>,
        ids: &mut Vec<Spanned<String>>,
    ) {
        let Some(fields) = self.fields(root, "policy file", FILE_FIELDS) else {
            return;
        };
        let pack = fields
            .get("pack")
            .and_then(|node| self.string(node, "pack"))
            .map(|pack| pack.value);
        if let Some(node) = fields.get("description") {
            self.string(node, "description");
        }
        let Some(list) = self.required(&fields, "policies", ", expected a list of policies") else {
            return;
        };
        match &list.value {
            Node::Seq(items) => {
                for item in items {
                    let (id, policy) = self.policy(item, pack.as_deref());
                    ids.extend(id);
                    policies.extend(policy);
                }
            }
            // `policies:` with nothing after it: an empty pack.
            Node::Null => {}
            other => self.error(
                &list.referenced,
                format!("expected a list for `policies`, found {}", other.describe()),
            ),
        }
    }

    /// One policy; its id (when it has a valid one) and the policy (when it has no error).
    fn policy(
        &mut self,
        node: &Spanned<Node>,
        pack: Option<&str>,
    ) -> (Option<Spanned<String>>, Option<Policy>) {
        let before = self.diagnostics.len();
        let what = match peek_id(node) {
            Some(id) => format!("policy `{id}`"),
            None => "policy".to_owned(),
        };
        let Some(fields) = self.fields(node, &what, POLICY_FIELDS) else {
            return (None, None);
        };

        let id = self
            .required(&fields, "id", "")
            .and_then(|node| self.string(node, "id"))
            .filter(|id| {
                let valid = valid_id(&id.value);
                if !valid {
                    self.error(
                        &id.referenced,
                        format!(
                            "invalid policy id `{}`: use lower-case letters, digits, `-` and `.`, \
                             starting with a letter or digit (e.g. signing-key-max-age)",
                            id.value
                        ),
                    );
                }
                valid
            });
        let description = fields
            .get("description")
            .and_then(|node| self.string(node, "description"))
            .map(|text| text.value);
        let severity_hint = format!(", expected one of: {}", names_of(Severity::ALL));
        let severity = self
            .required(&fields, "severity", &severity_hint)
            .and_then(|node| self.string(node, "severity"))
            .and_then(|text| self.name::<Severity>(&text));
        let mode = match fields.get("mode") {
            Some(node) => self
                .string(node, "mode")
                .and_then(|text| self.name::<Mode>(&text)),
            None => Some(Mode::default()),
        };
        let schedule = fields.get("schedule").map(|node| self.schedule(node));
        let select = match fields.get("select") {
            Some(node) => self.selector(node),
            None => Some(Selector::default()),
        };
        let when_hint = format!(", expected at least one of: {}", WHEN_FIELDS.join(", "));
        let when = match fields.entry("when") {
            Some((key, node)) => self.conditions(key, node),
            None => {
                self.required(&fields, "when", &when_hint);
                None
            }
        };
        let actions_hint = format!(", expected a list of: {}", names_of(ActionKind::ALL));
        let actions = self
            .required(&fields, "actions", &actions_hint)
            .and_then(|node| self.names::<ActionKind>(node, "actions"));

        let enforce = match fields.get("enforce") {
            Some(node) => self.enforcement(node),
            None => Some(Enforcement::default()),
        };

        let policy = match (id.clone(), severity, mode, schedule, select, when, actions) {
            (
                Some(id),
                Some(severity),
                Some(mode),
                schedule,
                Some(select),
                Some(when),
                Some(actions),
            ) if self.diagnostics.len() == before => Some(Policy {
                id: id.value,
                description,
                severity,
                mode,
                schedule: schedule.flatten(),
                select,
                when,
                actions,
                enforce: enforce.unwrap_or_default(),
                origin: Origin {
                    file: self.file.to_owned(),
                    line: node.referenced.line(),
                    column: node.referenced.column(),
                    pack: pack.map(str::to_owned),
                },
            }),
            _ => None,
        };
        (id, policy)
    }

    /// The `enforce:` block: how an enforcing policy acts.
    fn enforcement(&mut self, node: &Spanned<Node>) -> Option<Enforcement> {
        let before = self.diagnostics.len();
        let fields = self.fields(node, "`enforce`", ENFORCE_FIELDS)?;
        let mut out = Enforcement::default();
        if let Some(node) = fields.get("approval")
            && let Some(text) = self.string(node, "approval")
        {
            out.approval = self.name::<Approval>(&text).unwrap_or_default();
        }
        if let Some(node) = fields.get("max_actions_per_run")
            && let Some(n) = self.whole_number(node, "max_actions_per_run", 1, 100_000)
        {
            out.max_actions_per_run = n;
        }
        if let Some(node) = fields.get("halt_share") {
            out.halt_share = self.share(node, "halt_share");
        }
        if let Some(node) = fields.get("delete_hold")
            && let Some(hold) = self.threshold(node, "delete_hold")
        {
            out.delete_hold = hold.duration;
        }
        if let Some(node) = fields.get("generate") {
            out.generate = self.generator(node);
        }
        if let Some(node) = fields.get("retry")
            && let Some(retry) = self.fields(node, "`retry`", RETRY_FIELDS)
        {
            if let Some(node) = retry.get("attempts")
                && let Some(n) = self.whole_number(node, "attempts", 0, 100)
            {
                out.retry.attempts = n;
            }
            if let Some(node) = retry.get("backoff")
                && let Some(backoff) = self.threshold(node, "backoff")
            {
                out.retry.backoff = backoff.duration;
            }
        }
        (self.diagnostics.len() == before).then_some(out)
    }

    /// A whole number within `min..=max`.
    fn whole_number(
        &mut self,
        node: &Spanned<Node>,
        name: &str,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        let text = self.string(node, name)?;
        match text.value.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    &text.referenced,
                    format!(
                        "invalid `{name}` `{}`: expected a whole number from {min} to {max}",
                        text.value
                    ),
                );
                None
            }
        }
    }

    /// A share: `0.25` or `25%`, more than 0 and at most 1.
    fn share(&mut self, node: &Spanned<Node>, name: &str) -> Option<f64> {
        let text = self.string(node, name)?;
        let value = text.value.trim();
        let parsed = match value.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().ok().map(|it| it / 100.0),
            None => value.parse::<f64>().ok(),
        };
        match parsed {
            Some(share) if share > 0.0 && share <= 1.0 => Some(share),
            _ => {
                self.error(
                    &text.referenced,
                    format!(
                        "invalid `{name}` `{value}`: expected a share of the source's \
                         credentials, more than 0 and at most 1 (e.g. 0.25 or 25%)"
                    ),
                );
                None
            }
        }
    }

    fn selector(&mut self, node: &Spanned<Node>) -> Option<Selector> {
        let before = self.diagnostics.len();
        let fields = self.fields(node, "`select`", SELECT_FIELDS)?;
        let mut select = Selector::default();
        if let Some(node) = fields.get("sources") {
            select.sources = self.patterns(node, "sources");
        }
        if let Some(node) = fields.get("kinds") {
            select.kinds = self
                .names::<CredentialKind>(node, "kinds")
                .map(|kinds| kinds.into_iter().collect::<KindSet>());
        }
        if let Some(node) = fields.get("names") {
            select.names = self.patterns(node, "names");
        }
        if let Some(node) = fields.get("identities") {
            select.identities = self.patterns(node, "identities");
        }
        if let Some(node) = fields.get("purposes") {
            select.purposes = self.patterns(node, "purposes");
        }
        if let Some(node) = fields.get("tags") {
            select.tags = self.tag_patterns(node);
        }
        (self.diagnostics.len() == before).then_some(select)
    }

    fn tag_patterns(&mut self, node: &Spanned<Node>) -> Vec<(String, Patterns)> {
        let Node::Map(entries) = &node.value else {
            self.error(
                &node.referenced,
                format!(
                    "expected a mapping of tag key to glob for `tags` (e.g. {{ env: \"prod*\" }}), \
                     found {}",
                    node.value.describe()
                ),
            );
            return Vec::new();
        };
        if entries.is_empty() {
            self.error(
                &node.referenced,
                "`tags` is empty; give at least one tag or leave it out",
            );
        }
        let mut tags = Vec::new();
        for (key, value) in entries {
            let Some(text) = self.string(value, "tags") else {
                continue;
            };
            match Patterns::new(std::slice::from_ref(&text.value)) {
                Ok(patterns) => tags.push((key.value.clone(), patterns)),
                Err(err) => self.error(&text.referenced, format!("{err} in `tags`")),
            }
        }
        tags
    }

    /// `when`, reported at its key when it has no condition.
    fn conditions(&mut self, key: &Spanned<String>, node: &Spanned<Node>) -> Option<Conditions> {
        let before = self.diagnostics.len();
        let fields = self.fields(node, "`when`", WHEN_FIELDS)?;
        if fields.entries.is_empty() {
            self.error(
                &key.referenced,
                format!(
                    "`when` has no conditions, expected at least one of: {}",
                    WHEN_FIELDS.join(", ")
                ),
            );
            return None;
        }
        let mut when = Conditions::default();
        let threshold = |this: &mut Self, name: &str| {
            fields.get(name).and_then(|node| this.threshold(node, name))
        };
        when.age_over = threshold(self, "age_over");
        when.unused_for = threshold(self, "unused_for");
        when.never_used_and_older_than = threshold(self, "never_used_and_older_than");
        when.expires_within = threshold(self, "expires_within");
        when.expired = fields
            .get("expired")
            .and_then(|node| self.bool(node, "expired"));
        when.owner_missing = fields
            .get("owner_missing")
            .and_then(|node| self.bool(node, "owner_missing"));
        if let Some(node) = fields.get("status") {
            when.status = self.statuses(node);
        }
        if let Some(node) = fields.get("tags_missing") {
            when.tags_missing = self
                .strings(node, "tags_missing")
                .map(|keys| keys.into_iter().map(|key| key.value).collect())
                .unwrap_or_default();
        }
        if let Some(node) = fields.get("identity_credentials") {
            when.identity_credentials = self.identity_condition(node);
        }
        (self.diagnostics.len() == before).then_some(when)
    }

    /// `identity_credentials: { kinds: [..], status: [..], more_than: N }`.
    fn identity_condition(&mut self, node: &Spanned<Node>) -> Option<IdentityCondition> {
        let before = self.diagnostics.len();
        let fields = self.fields(node, "`identity_credentials`", IDENTITY_FIELDS)?;
        let mut condition = IdentityCondition::default();
        if let Some(node) = fields.get("kinds") {
            condition.kinds = self
                .names::<CredentialKind>(node, "kinds")
                .map(|kinds| kinds.into_iter().collect::<KindSet>());
        }
        if let Some(node) = fields.get("status") {
            condition.status = self.statuses(node);
        }
        let hint = ", expected a whole number (e.g. `more_than: 1`)";
        if let Some(node) = self.required(&fields, "more_than", hint) {
            condition.more_than = self.count(node, "more_than").unwrap_or_default();
        }
        (self.diagnostics.len() == before).then_some(condition)
    }

    /// A whole number, 0 or more.
    fn count(&mut self, node: &Spanned<Node>, name: &str) -> Option<u64> {
        let parsed = match &node.value {
            Node::Number(text) => text.parse::<u64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            let found = match &node.value {
                Node::Number(_) => format!("`{}`", self.source_text(node)),
                other => other.describe().to_owned(),
            };
            self.error(
                &node.referenced,
                format!("expected a whole number (0 or more) for `{name}`, found {found}"),
            );
        }
        parsed
    }

    fn statuses(&mut self, node: &Spanned<Node>) -> Option<StatusSet> {
        const EXPECTED: &str = "expected one of: active, inactive, revoked";
        let texts = self.strings(node, "status")?;
        let mut set = StatusSet::default();
        let before = self.diagnostics.len();
        for text in texts {
            match text.value.parse::<CredentialStatus>() {
                Ok(CredentialStatus::Gone) => self.error(
                    &text.referenced,
                    format!(
                        "status `gone` never matches: gone credentials are not evaluated; \
                         {EXPECTED}"
                    ),
                ),
                Ok(status) => set.insert(status),
                Err(_) => self.error(
                    &text.referenced,
                    format!("unknown credential status `{}`, {EXPECTED}", text.value),
                ),
            }
        }
        (self.diagnostics.len() == before).then_some(set)
    }
}

/// The id of a policy mapping, if it has a string one, to name the policy in messages.
fn peek_id(node: &Spanned<Node>) -> Option<&str> {
    let Node::Map(entries) = &node.value else {
        return None;
    };
    entries.iter().find_map(|(key, value)| match &value.value {
        Node::Str(id) if key.value == "id" => Some(id.as_str()),
        _ => None,
    })
}

/// `a, b, c` for a closed enum's names.
fn names_of<T: Copy + fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[a-z0-9.-]+`, starting with a letter or digit.
fn valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A duration as people write it (`90d`, `12h`, `2w`), as a [`TimeDelta`]; at most
/// [`MAX_DURATION`](keywarden_connector::duration::MAX_DURATION), so adding it to a time cannot
/// overflow.
fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    use keywarden_connector::duration;
    duration::parse_duration(text)
        .and_then(duration::time_delta)
        .map_err(|err| err.to_string())
}
