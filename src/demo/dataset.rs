//! The attributes and events that the emulator serves.
//!
//! Attributes are stored as MISP writes them on the wire for `returnFormat: json`: string ids,
//! epoch-second string timestamps, the columns in database order, then an `Event` stub and
//! optional `Object` and `Tag` members. Events carry the metadata that `includeContext`,
//! `includeEventTags` and the `published` filter need.

use serde::de::Error as _;
use serde_json::{Map, Value, json};

/// Attributes and events the emulator serves.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Attribute objects in the order a search returns them, because MISP has no default ORDER BY.
    ///
    /// Besides the wire members, an attribute may store `Sighting` and `RelatedAttribute`
    /// arrays. The emulator emits them only when the request sets `includeSightings` or
    /// `includeCorrelations`, and computes `RelatedAttribute` when it is not stored.
    pub attributes: Vec<Value>,
    /// Event objects, matched to attributes by `id` against the attribute's `event_id`.
    pub events: Vec<Value>,
}

impl Dataset {
    /// The demo data set.
    ///
    /// Five events with 20 attributes, built from documentation addresses (RFC 5737, RFC 3849),
    /// `.example` names, the EICAR test file hashes and one onion name. It contains composite
    /// types, an object, attribute and event tags, a value present in two events, an attribute
    /// with `first_seen`/`last_seen` and a soft-deleted attribute.
    pub fn demo() -> Dataset {
        let events = demo_events();
        let attributes = demo_attributes(&events);
        let events = events
            .iter()
            .map(|event| event.to_json(&attributes))
            .collect();
        Dataset { attributes, events }
    }

    /// Parses MISP wire JSON `{"response": {"Attribute": [...]}}` (or PyMISP's
    /// `{"Attribute": [...]}`) into a data set with no events.
    ///
    /// # Errors
    ///
    /// Returns an error when the text is not JSON or has no `Attribute` array in either place.
    pub fn from_rest_search_json(json: &str) -> serde_json::Result<Dataset> {
        let root: Value = serde_json::from_str(json)?;
        let container = root.get("response").unwrap_or(&root);
        let Some(Value::Array(attributes)) = container.get("Attribute") else {
            return Err(serde_json::Error::custom(
                "missing `Attribute` array: expected {\"response\": {\"Attribute\": [...]}} \
                 or {\"Attribute\": [...]}",
            ));
        };
        Ok(Dataset {
            attributes: attributes.clone(),
            events: Vec::new(),
        })
    }
}

/// An organisation as MISP shows it in `Orgc`.
struct Organisation {
    id: &'static str,
    name: &'static str,
    uuid: &'static str,
}

/// The instance's own organisation, which owns every demo event (`org_id`).
const LOCAL_ORG_ID: &str = "1";

const EXAMPLE_CERT: Organisation = Organisation {
    id: "2",
    name: "Example CERT",
    uuid: "5d1a7c3e-8f2b-4c6d-9e0a-1b2c3d4e5f60",
};

const DEMO_SOC: Organisation = Organisation {
    id: "3",
    name: "Demo SOC",
    uuid: "8b9c0d1e-2f3a-4b5c-8d6e-7f8091a2b3c4",
};

/// Event metadata from which both the event object and the attribute `Event` stubs are built.
struct EventSpec {
    id: &'static str,
    uuid: &'static str,
    info: &'static str,
    date: &'static str,
    threat_level_id: &'static str,
    analysis: &'static str,
    published: bool,
    timestamp: &'static str,
    publish_timestamp: &'static str,
    distribution: &'static str,
    orgc: Organisation,
    tags: Vec<Value>,
}

impl EventSpec {
    /// Returns the `Event` stub MISP adds to each attribute when `includeContext` is off.
    fn stub(&self) -> Value {
        json!({
            "org_id": LOCAL_ORG_ID,
            "distribution": self.distribution,
            "id": self.id,
            "info": self.info,
            "orgc_id": self.orgc.id,
            "uuid": self.uuid,
        })
    }

    /// Returns the full event object, with `attribute_count` counted over the live attributes.
    fn to_json(&self, attributes: &[Value]) -> Value {
        let attribute_count = attributes
            .iter()
            .filter(|attribute| attribute["event_id"] == self.id && attribute["deleted"] == false)
            .count();
        json!({
            "id": self.id,
            "orgc_id": self.orgc.id,
            "org_id": LOCAL_ORG_ID,
            "date": self.date,
            "threat_level_id": self.threat_level_id,
            "info": self.info,
            "published": self.published,
            "uuid": self.uuid,
            "analysis": self.analysis,
            "attribute_count": attribute_count.to_string(),
            "timestamp": self.timestamp,
            "distribution": self.distribution,
            "sharing_group_id": "0",
            "proposal_email_lock": false,
            "locked": false,
            "publish_timestamp": self.publish_timestamp,
            "sighting_timestamp": "0",
            "disable_correlation": false,
            "extends_uuid": "",
            "protected": null,
            "Orgc": {
                "id": self.orgc.id,
                "name": self.orgc.name,
                "uuid": self.orgc.uuid,
                "local": false,
            },
            "Tag": self.tags,
        })
    }
}

/// Returns a tag as MISP stores it. Names starting with `misp-galaxy:` are galaxy clusters.
fn tag(id: &str, name: &str, colour: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "colour": colour,
        "exportable": true,
        "user_id": "0",
        "hide_tag": false,
        "numerical_value": null,
        "is_galaxy": name.starts_with("misp-galaxy:"),
        "is_custom_galaxy": false,
        "local_only": false,
        "local": 0,
    })
}

fn tlp_white() -> Value {
    tag("2", "tlp:white", "#ffffff")
}

fn tlp_green() -> Value {
    tag("3", "tlp:green", "#339900")
}

fn tlp_amber() -> Value {
    tag("4", "tlp:amber", "#ffc000")
}

fn demo_events() -> Vec<EventSpec> {
    vec![
        EventSpec {
            id: "11",
            uuid: "0c5e2a41-7d3b-4f6a-9b1c-2e4d6f8a0b11",
            info: "Credential phishing against finance staff",
            date: "2026-01-12",
            threat_level_id: "2",
            analysis: "2",
            published: true,
            timestamp: "1768233600",
            publish_timestamp: "1768237200",
            distribution: "3",
            orgc: EXAMPLE_CERT,
            tags: vec![
                tlp_green(),
                tag(
                    "101",
                    "misp-galaxy:mitre-attack-pattern=\"Spearphishing Link - T1566.002\"",
                    "#0088cc",
                ),
            ],
        },
        EventSpec {
            id: "12",
            uuid: "1d6f3b52-8e4c-4a7b-8c2d-3f5e7a9b1c12",
            info: "EICAR test file delivered as a fake updater",
            date: "2026-02-03",
            threat_level_id: "3",
            analysis: "2",
            published: true,
            timestamp: "1770130800",
            publish_timestamp: "1770134400",
            distribution: "3",
            orgc: EXAMPLE_CERT,
            tags: vec![
                tlp_white(),
                tag(
                    "102",
                    "misp-galaxy:mitre-attack-pattern=\"Malicious File - T1204.002\"",
                    "#0088cc",
                ),
            ],
        },
        EventSpec {
            id: "13",
            uuid: "2e7a4c63-9f5d-4b8c-9d3e-4a6f8b0c2d13",
            info: "Onion command-and-control infrastructure",
            date: "2026-02-20",
            threat_level_id: "1",
            analysis: "1",
            published: true,
            timestamp: "1771603200",
            publish_timestamp: "1771606800",
            distribution: "1",
            orgc: DEMO_SOC,
            tags: vec![
                tlp_amber(),
                tag(
                    "103",
                    "misp-galaxy:mitre-attack-pattern=\"Multi-hop Proxy - T1090.003\"",
                    "#0088cc",
                ),
            ],
        },
        EventSpec {
            id: "14",
            uuid: "3f8b5d74-0a6e-4c9d-8e4f-5b7a9c1d3e14",
            info: "Port scanning from a documentation range",
            date: "2026-03-01",
            threat_level_id: "3",
            analysis: "0",
            published: false,
            timestamp: "1772380800",
            publish_timestamp: "0",
            distribution: "0",
            orgc: DEMO_SOC,
            tags: vec![tlp_green()],
        },
        EventSpec {
            id: "15",
            uuid: "4a9c6e85-1b7f-4d0e-9f5a-6c8b0d2e4f15",
            info: "Reassessment of the fake updater infrastructure",
            date: "2026-03-10",
            threat_level_id: "4",
            analysis: "2",
            published: true,
            timestamp: "1773158400",
            publish_timestamp: "1773162000",
            distribution: "3",
            orgc: EXAMPLE_CERT,
            tags: vec![
                tlp_white(),
                tag("104", "misp-galaxy:threat-actor=\"Demo Actor\"", "#0088cc"),
            ],
        },
    ]
}

/// The columns of one attribute; everything not listed takes MISP's default.
struct AttributeSpec {
    id: &'static str,
    event: usize,
    category: &'static str,
    kind: &'static str,
    to_ids: bool,
    uuid: &'static str,
    timestamp: &'static str,
    comment: &'static str,
    value: &'static str,
}

impl AttributeSpec {
    fn to_json(&self, events: &[EventSpec]) -> Map<String, Value> {
        let event = &events[self.event];
        let attribute = json!({
            "id": self.id,
            "event_id": event.id,
            "object_id": "0",
            "object_relation": null,
            "category": self.category,
            "type": self.kind,
            "to_ids": self.to_ids,
            "uuid": self.uuid,
            "timestamp": self.timestamp,
            "distribution": "5",
            "sharing_group_id": "0",
            "comment": self.comment,
            "deleted": false,
            "disable_correlation": false,
            "first_seen": null,
            "last_seen": null,
            "value": self.value,
            "Event": event.stub(),
        });
        match attribute {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal is an object"),
        }
    }
}

/// Makes an attribute a member of a MISP object (`object_id`, `object_relation`, `Object`).
fn put_in_object(attribute: &mut Map<String, Value>, object_id: &str, relation: &str) {
    attribute.insert("object_id".into(), json!(object_id));
    attribute.insert("object_relation".into(), json!(relation));
    attribute.insert(
        "Object".into(),
        json!({"id": object_id, "distribution": "5", "sharing_group_id": "0"}),
    );
}

fn demo_attributes(events: &[EventSpec]) -> Vec<Value> {
    const PHISHING: usize = 0;
    const EICAR: usize = 1;
    const ONION: usize = 2;
    const SCANNING: usize = 3;
    const REASSESSMENT: usize = 4;

    let specs = [
        // (id, event, category, type, to_ids, uuid, timestamp, comment, value)
        (
            "1001",
            PHISHING,
            "Payload delivery",
            "email-src",
            true,
            "6b0d7f96-2c8a-4e1f-8a6b-7d9c1e3f5a01",
            "1768230000",
            "Envelope sender of the lure",
            "phisher@bad-sender.example",
        ),
        (
            "1002",
            PHISHING,
            "Network activity",
            "url",
            true,
            "6b0d7f96-2c8a-4e1f-8a6b-7d9c1e3f5a02",
            "1768230060",
            "Credential harvesting page",
            "https://phish.example/login?session=1",
        ),
        (
            "1003",
            PHISHING,
            "Network activity",
            "domain",
            true,
            "6b0d7f96-2c8a-4e1f-8a6b-7d9c1e3f5a03",
            "1768230120",
            "",
            "phish.example",
        ),
        (
            "1004",
            PHISHING,
            "Payload delivery",
            "email-subject",
            false,
            "6b0d7f96-2c8a-4e1f-8a6b-7d9c1e3f5a04",
            "1768230180",
            "",
            "Action required: invoice overdue",
        ),
        (
            "1005",
            EICAR,
            "Payload delivery",
            "md5",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b05",
            "1770127200",
            "",
            "44d88612fea8a8f36de82e1278abb02f",
        ),
        (
            "1006",
            EICAR,
            "Payload delivery",
            "sha1",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b06",
            "1770127200",
            "",
            "3395856ce81f2b7382dee72602f798b642f14140",
        ),
        (
            "1007",
            EICAR,
            "Payload delivery",
            "sha256",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b07",
            "1770127200",
            "",
            "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        ),
        (
            "1008",
            EICAR,
            "Payload delivery",
            "filename|sha256",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b08",
            "1770127260",
            "Dropped by the fake updater",
            "eicar.com|275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        ),
        (
            "1009",
            EICAR,
            "Payload delivery",
            "malware-sample",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b09",
            "1770127320",
            "Sample stored as a zip with password infected",
            "eicar.com|44d88612fea8a8f36de82e1278abb02f",
        ),
        (
            "1010",
            EICAR,
            "Network activity",
            "url",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b10",
            "1770127380",
            "Download location of the fake updater",
            "http://malware.example/payload.exe",
        ),
        (
            "1011",
            EICAR,
            "Network activity",
            "hostname",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b11",
            "1770127440",
            "Update check beacon",
            "update-check.example",
        ),
        (
            "1012",
            EICAR,
            "Network activity",
            "hostname",
            true,
            "7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b12",
            "1770130000",
            "Withdrawn: typo in the original report",
            "retired-dropper.example",
        ),
        (
            "1013",
            ONION,
            "Network activity",
            "domain",
            true,
            "8d2f9b18-4e0c-4a3b-8c8d-9f1e3a5b7c13",
            "1771599600",
            "Hidden service used for tasking",
            "mb4z3nlfyrcjnoqf.onion",
        ),
        (
            "1014",
            ONION,
            "Network activity",
            "ip-dst",
            true,
            "8d2f9b18-4e0c-4a3b-8c8d-9f1e3a5b7c14",
            "1771599660",
            "Tor bridge contacted before the hidden service",
            "203.0.113.77",
        ),
        (
            "1015",
            ONION,
            "Network activity",
            "domain|ip",
            true,
            "8d2f9b18-4e0c-4a3b-8c8d-9f1e3a5b7c15",
            "1771599720",
            "",
            "c2.malware.example|203.0.113.77",
        ),
        (
            "1016",
            ONION,
            "Network activity",
            "ip-dst|port",
            true,
            "8d2f9b18-4e0c-4a3b-8c8d-9f1e3a5b7c16",
            "1771599780",
            "TLS fallback channel",
            "192.0.2.44|443",
        ),
        (
            "1017",
            ONION,
            "Network activity",
            "ip-dst",
            true,
            "8d2f9b18-4e0c-4a3b-8c8d-9f1e3a5b7c17",
            "1771599840",
            "",
            "2001:db8::bad:1",
        ),
        (
            "1018",
            SCANNING,
            "Network activity",
            "ip-src",
            true,
            "9e3a0c29-5f1d-4b4c-9d9e-0a2f4b6c8d18",
            "1772377200",
            "SSH and RDP scanning",
            "198.51.100.23",
        ),
        (
            "1019",
            SCANNING,
            "Network activity",
            "user-agent",
            false,
            "9e3a0c29-5f1d-4b4c-9d9e-0a2f4b6c8d19",
            "1772377260",
            "",
            "masscan/1.3 (https://scanner.example/about)",
        ),
        (
            "1020",
            REASSESSMENT,
            "Network activity",
            "hostname",
            false,
            "0f4b1d3a-6a2e-4c5d-8eaf-1b3a5c7d9e20",
            "1773154800",
            "Reassessed: now serves a legitimate update service",
            "update-check.example",
        ),
    ];

    let mut attributes: Vec<Map<String, Value>> = specs
        .iter()
        .map(
            |&(id, event, category, kind, to_ids, uuid, timestamp, comment, value)| {
                AttributeSpec {
                    id,
                    event,
                    category,
                    kind,
                    to_ids,
                    uuid,
                    timestamp,
                    comment,
                    value,
                }
                .to_json(events)
            },
        )
        .collect();

    // Attributes 1005-1007 are the hashes of one `file` object.
    put_in_object(&mut attributes[4], "201", "md5");
    put_in_object(&mut attributes[5], "201", "sha1");
    put_in_object(&mut attributes[6], "201", "sha256");

    attributes[1].insert("Tag".into(), json!([tlp_green()]));
    attributes[9].insert(
        "Tag".into(),
        json!([tlp_white(), tag("105", "kill-chain:Delivery", "#ff0000")]),
    );
    attributes[12].insert(
        "Tag".into(),
        json!([
            tlp_amber(),
            tag("106", "tor:exit-or-hidden-service", "#7e2f8e")
        ]),
    );

    attributes[11].insert("deleted".into(), json!(true));

    attributes[17].insert(
        "first_seen".into(),
        json!("2026-03-01T10:00:00.000000+00:00"),
    );
    attributes[17].insert(
        "last_seen".into(),
        json!("2026-03-08T18:30:00.000000+00:00"),
    );

    attributes.into_iter().map(Value::Object).collect()
}
