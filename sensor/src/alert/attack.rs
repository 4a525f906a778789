//! MITRE ATT&CK: which tactics and techniques each detector's alerts stand for, and the stage of
//! an attack they belong to.
//!
//! Every alert carries its mapping in ECS `threat.*` (`threat.framework = "MITRE ATT&CK"`,
//! `threat.tactic.{id,name,reference}`, `threat.technique.{id,name,reference}` and
//! `threat.technique.subtechnique.*`), as arrays in the order of [`of_alert`]: the first entry is
//! the primary one, whose tactic decides the alert's [`Stage`] in a staged incident. The mapping
//! depends on the detector, on its rule (`nbad.evidence.details.rule`: a Tor circuit is a
//! multi-hop proxy, an executable download an ingress tool transfer), on the port of a lateral
//! connection (the remote service's sub-technique) and, for `host_outlier`, on the first of its
//! reported features (`details.features`, most deviant first) that points to a step of an attack.
//! `capture_loss` is the sensor's own health and maps to nothing.
//!
//! The table is static (ATT&CK v15 identifiers and names); nothing here allocates per alert
//! beyond the small vector it returns.

use serde_json::{Value, json};

use super::{Alert, Detector};

/// An ATT&CK tactic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tactic {
    /// `TA0007`.
    pub id: &'static str,
    /// `Discovery`.
    pub name: &'static str,
}

/// TA0007.
pub const DISCOVERY: Tactic = Tactic { id: "TA0007", name: "Discovery" };
/// TA0008.
pub const LATERAL_MOVEMENT: Tactic = Tactic { id: "TA0008", name: "Lateral Movement" };
/// TA0011.
pub const COMMAND_AND_CONTROL: Tactic = Tactic { id: "TA0011", name: "Command and Control" };
/// TA0010.
pub const EXFILTRATION: Tactic = Tactic { id: "TA0010", name: "Exfiltration" };
/// TA0040.
pub const IMPACT: Tactic = Tactic { id: "TA0040", name: "Impact" };

/// One technique (and sub-technique, where one fits) under one tactic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Technique {
    /// The tactic it serves here.
    pub tactic: Tactic,
    /// `T1071`.
    pub id: &'static str,
    /// `Application Layer Protocol`.
    pub name: &'static str,
    /// `("T1071.004", "DNS")`.
    pub sub: Option<(&'static str, &'static str)>,
}

const fn t(tactic: Tactic, id: &'static str, name: &'static str) -> Technique {
    Technique { tactic, id, name, sub: None }
}

const fn sub(
    tactic: Tactic,
    id: &'static str,
    name: &'static str,
    s: (&'static str, &'static str),
) -> Technique {
    Technique { tactic, id, name, sub: Some(s) }
}

const SERVICE_DISCOVERY: Technique = t(DISCOVERY, "T1046", "Network Service Discovery");
const SYSTEM_DISCOVERY: Technique = t(DISCOVERY, "T1018", "Remote System Discovery");
const APP_LAYER: Technique = t(COMMAND_AND_CONTROL, "T1071", "Application Layer Protocol");
const APP_DNS: Technique =
    sub(COMMAND_AND_CONTROL, "T1071", "Application Layer Protocol", ("T1071.004", "DNS"));
const APP_WEB: Technique =
    sub(COMMAND_AND_CONTROL, "T1071", "Application Layer Protocol", ("T1071.001", "Web Protocols"));
const ENCRYPTED: Technique = t(COMMAND_AND_CONTROL, "T1573", "Encrypted Channel");
const NON_STANDARD_PORT: Technique = t(COMMAND_AND_CONTROL, "T1571", "Non-Standard Port");
const NON_APP_LAYER: Technique = t(COMMAND_AND_CONTROL, "T1095", "Non-Application Layer Protocol");
const INGRESS_TOOL: Technique = t(COMMAND_AND_CONTROL, "T1105", "Ingress Tool Transfer");
const MULTI_HOP: Technique = sub(COMMAND_AND_CONTROL, "T1090", "Proxy", ("T1090.003", "Multi-hop Proxy"));
const DGA: Technique =
    sub(COMMAND_AND_CONTROL, "T1568", "Dynamic Resolution", ("T1568.002", "Domain Generation Algorithms"));
const EXFIL_C2: Technique = t(EXFILTRATION, "T1041", "Exfiltration Over C2 Channel");
const EXFIL_ALT: Technique = t(EXFILTRATION, "T1048", "Exfiltration Over Alternative Protocol");
const NETWORK_DOS: Technique = t(IMPACT, "T1498", "Network Denial of Service");
const ENDPOINT_DOS: Technique = t(IMPACT, "T1499", "Endpoint Denial of Service");
const REMOTE_SERVICES: Technique = t(LATERAL_MOVEMENT, "T1021", "Remote Services");

/// The remote-service sub-technique of a lateral connection to `port`.
fn remote_service(port: Option<u16>) -> Technique {
    let s = match port {
        Some(3389) => ("T1021.001", "Remote Desktop Protocol"),
        Some(445 | 139) => ("T1021.002", "SMB/Windows Admin Shares"),
        Some(135) => ("T1021.003", "Distributed Component Object Model"),
        Some(22) => ("T1021.004", "SSH"),
        Some(5900) => ("T1021.005", "VNC"),
        Some(5985 | 5986) => ("T1021.006", "Windows Remote Management"),
        _ => return REMOTE_SERVICES,
    };
    Technique { sub: Some(s), ..REMOTE_SERVICES }
}

/// The techniques one `host_outlier` feature points to (none for features that say nothing of
/// an attack's step: bytes in, bytes to inside hosts, which file servers send all day).
fn outlier_feature(feature: &str) -> Option<Technique> {
    match feature {
        "inside_peers" | "dst_ports" | "failed_connections" | "connections" => Some(SERVICE_DISCOVERY),
        "admin_connections" | "new_admin_peers" | "inside_connections" => Some(REMOTE_SERVICES),
        "bytes_out" | "bytes_out_udp" | "bytes_out_unusual_ports" => Some(EXFIL_ALT),
        "dns_queries" | "dns_unique_names" => Some(APP_DNS),
        _ => None,
    }
}

/// The technique of a `host_outlier` alert: that of the first of its reported features (most
/// deviant first) that points to one.
fn outlier<'a>(features: impl IntoIterator<Item = &'a str>) -> Vec<Technique> {
    features.into_iter().find_map(outlier_feature).into_iter().collect()
}

/// The techniques `detector` stands for, given its rule, port and (`host_outlier`) reported
/// features, most deviant first (primary technique first).
#[must_use]
pub fn techniques(
    detector: Detector,
    rule: Option<&str>,
    port: Option<u16>,
    features: &[&str],
) -> Vec<Technique> {
    match detector {
        Detector::Scan => match rule {
            Some("icmp_sweep" | "arp_sweep") => vec![SYSTEM_DISCOVERY, SERVICE_DISCOVERY],
            _ => vec![SERVICE_DISCOVERY],
        },
        Detector::MalformedTraffic => vec![SERVICE_DISCOVERY],
        Detector::ProtocolMismatch => match rule {
            Some("executable_transfer") => vec![INGRESS_TOOL, NON_STANDARD_PORT],
            Some("fully_encrypted") => vec![ENCRYPTED, NON_STANDARD_PORT],
            _ => vec![NON_STANDARD_PORT],
        },
        Detector::DnsTunnel => vec![APP_DNS, EXFIL_ALT],
        Detector::IcmpTunnel => vec![NON_APP_LAYER],
        Detector::Beaconing => vec![APP_LAYER, ENCRYPTED],
        Detector::LongConnection => vec![APP_LAYER],
        Detector::Exfiltration => vec![EXFIL_C2, EXFIL_ALT],
        Detector::Flood => vec![NETWORK_DOS, ENDPOINT_DOS],
        Detector::SuspiciousTls => match rule {
            Some("tor") => vec![MULTI_HOP, ENCRYPTED],
            _ => vec![ENCRYPTED],
        },
        Detector::SuspiciousHttp => match rule {
            Some("executable_download") => vec![INGRESS_TOOL, APP_WEB],
            _ => vec![APP_WEB],
        },
        Detector::Dga => vec![DGA],
        Detector::LateralMovement => vec![remote_service(port)],
        Detector::HostOutlier => outlier(features.iter().copied()),
        Detector::CaptureLoss => Vec::new(),
    }
}

/// The techniques of `alert` (see [`techniques`]); of an incident record, those of every
/// detector in its steps.
#[must_use]
pub fn of_alert(a: &Alert) -> Vec<Technique> {
    if let Some(record) = &a.record {
        return record.techniques();
    }
    let details = &a.evidence.details;
    let detail = |k: &str| details.get(k).and_then(Value::as_str);
    let features: Vec<&str> = details
        .get("features")
        .and_then(Value::as_array)
        .map(|fs| fs.iter().filter_map(|f| f.get("feature").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    techniques(a.detector, detail("rule"), a.port, &features)
}

/// Where an alert stands in an attack's progress: what a staged incident orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Discovery of hosts and services.
    Reconnaissance,
    /// Moving to other inside hosts.
    LateralMovement,
    /// Talking to the operator outside.
    CommandAndControl,
    /// Data leaving.
    Exfiltration,
}

impl Stage {
    /// The stages, in the order an attack goes through them.
    pub const ALL: [Self; 4] =
        [Self::Reconnaissance, Self::LateralMovement, Self::CommandAndControl, Self::Exfiltration];

    /// The stage of a tactic (`None`: not a step of the chain the incidents follow, e.g. impact).
    #[must_use]
    pub fn of_tactic(t: Tactic) -> Option<Self> {
        match t.id {
            "TA0043" | "TA0007" => Some(Self::Reconnaissance),
            "TA0008" => Some(Self::LateralMovement),
            "TA0011" => Some(Self::CommandAndControl),
            "TA0010" => Some(Self::Exfiltration),
            _ => None,
        }
    }

    /// The stage of an alert: its primary technique's tactic's.
    #[must_use]
    pub fn of_alert(a: &Alert) -> Option<Self> {
        of_alert(a).first().and_then(|t| Self::of_tactic(t.tactic))
    }

    /// `reconnaissance`, `lateral_movement`, `command_and_control`, `exfiltration`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Reconnaissance => "reconnaissance",
            Self::LateralMovement => "lateral_movement",
            Self::CommandAndControl => "command_and_control",
            Self::Exfiltration => "exfiltration",
        }
    }

    /// The stage in words, for narratives.
    #[must_use]
    pub fn words(self) -> &'static str {
        match self {
            Self::Reconnaissance => "reconnaissance",
            Self::LateralMovement => "lateral movement",
            Self::CommandAndControl => "command and control",
            Self::Exfiltration => "exfiltration",
        }
    }
}

fn tactic_url(id: &str) -> String {
    format!("https://attack.mitre.org/tactics/{id}/")
}

fn technique_url(id: &str) -> String {
    format!("https://attack.mitre.org/techniques/{}/", id.replace('.', "/"))
}

/// ECS `threat` for `techniques` (`None` when there are none): tactics and techniques as
/// parallel arrays, each listed once, in order.
#[must_use]
pub fn ecs_threat(techniques: &[Technique]) -> Option<Value> {
    if techniques.is_empty() {
        return None;
    }
    let mut tactics: Vec<Tactic> = Vec::new();
    let mut techs: Vec<(&str, &str)> = Vec::new();
    let mut subs: Vec<(&str, &str)> = Vec::new();
    for t in techniques {
        if !tactics.contains(&t.tactic) {
            tactics.push(t.tactic);
        }
        if !techs.iter().any(|x| x.0 == t.id) {
            techs.push((t.id, t.name));
        }
        if let Some(s) = t.sub
            && !subs.contains(&s)
        {
            subs.push(s);
        }
    }
    let mut technique = json!({
        "id": techs.iter().map(|x| x.0).collect::<Vec<_>>(),
        "name": techs.iter().map(|x| x.1).collect::<Vec<_>>(),
        "reference": techs.iter().map(|x| technique_url(x.0)).collect::<Vec<_>>(),
    });
    if !subs.is_empty()
        && let Some(obj) = technique.as_object_mut()
    {
        obj.insert(
            "subtechnique".into(),
            json!({
                "id": subs.iter().map(|x| x.0).collect::<Vec<_>>(),
                "name": subs.iter().map(|x| x.1).collect::<Vec<_>>(),
                "reference": subs.iter().map(|x| technique_url(x.0)).collect::<Vec<_>>(),
            }),
        );
    }
    Some(json!({
        "framework": "MITRE ATT&CK",
        "tactic": {
            "id": tactics.iter().map(|x| x.id).collect::<Vec<_>>(),
            "name": tactics.iter().map(|x| x.name).collect::<Vec<_>>(),
            "reference": tactics.iter().map(|x| tactic_url(x.id)).collect::<Vec<_>>(),
        },
        "technique": technique,
    }))
}

/// Tactic and technique ids as one comma-separated value each (`TA0011,TA0010`,
/// `T1071.004,T1048`: a sub-technique stands for its technique), for the flat formats (CEF,
/// LEEF) that have no ATT&CK fields of their own; `None` when there are none.
#[must_use]
pub fn flat_ids(techniques: &[Technique]) -> Option<(String, String)> {
    if techniques.is_empty() {
        return None;
    }
    let mut tactics: Vec<&str> = Vec::new();
    let mut techs: Vec<&str> = Vec::new();
    for t in techniques {
        if !tactics.contains(&t.tactic.id) {
            tactics.push(t.tactic.id);
        }
        let id = t.sub.map_or(t.id, |s| s.0);
        if !techs.contains(&id) {
            techs.push(id);
        }
    }
    Some((tactics.join(","), techs.join(",")))
}

/// OCSF `finding_info.attacks` for `techniques`.
#[must_use]
pub fn ocsf_attacks(techniques: &[Technique]) -> Vec<Value> {
    techniques
        .iter()
        .map(|t| {
            let mut v = json!({
                "tactic": { "uid": t.tactic.id, "name": t.tactic.name },
                "technique": { "uid": t.id, "name": t.name },
                "version": "15",
            });
            if let (Some((id, name)), Some(obj)) = (t.sub, v.as_object_mut()) {
                obj.insert("sub_technique".into(), json!({ "uid": id, "name": name }));
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_detector_but_capture_loss_maps_to_a_tactic() {
        for d in Detector::ALL {
            let ts = techniques(d, None, Some(445), &["inside_peers"]);
            assert_eq!(ts.is_empty(), d == Detector::CaptureLoss, "{}", d.name());
        }
    }

    #[test]
    fn rules_and_ports_pick_the_specific_technique() {
        let tor = techniques(Detector::SuspiciousTls, Some("tor"), None, &[]);
        assert_eq!(tor[0].sub, Some(("T1090.003", "Multi-hop Proxy")));
        let exe = techniques(Detector::SuspiciousHttp, Some("executable_download"), None, &[]);
        assert_eq!(exe[0].id, "T1105");
        let rdp = techniques(Detector::LateralMovement, None, Some(3389), &[]);
        assert_eq!(rdp[0].sub.map(|s| s.0), Some("T1021.001"));
        assert_eq!(Stage::of_tactic(rdp[0].tactic), Some(Stage::LateralMovement));
    }

    #[test]
    fn host_outlier_takes_the_first_feature_that_points_to_a_step() {
        let scan_like =
            techniques(Detector::HostOutlier, None, None, &["inside_bytes_out", "failed_connections"]);
        assert_eq!(scan_like, [SERVICE_DISCOVERY]);
        assert!(techniques(Detector::HostOutlier, None, None, &["inside_bytes_out", "bytes_in"]).is_empty());
    }

    #[test]
    fn ecs_threat_lists_tactics_and_techniques_once_each() {
        let doc = ecs_threat(&techniques(Detector::DnsTunnel, None, None, &[])).expect("mapped");
        assert_eq!(doc["framework"], "MITRE ATT&CK");
        assert_eq!(doc["tactic"]["id"], json!(["TA0011", "TA0010"]));
        assert_eq!(doc["technique"]["id"], json!(["T1071", "T1048"]));
        assert_eq!(doc["technique"]["subtechnique"]["id"], json!(["T1071.004"]));
        assert_eq!(doc["technique"]["reference"][0], "https://attack.mitre.org/techniques/T1071/");
        assert!(ecs_threat(&[]).is_none());
    }
}
