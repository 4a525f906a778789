//! The reference the hand-written encoder is held to: the ECS flow document as serde structs,
//! serialised by `serde_json`. Only the tests use it.

use std::net::IpAddr;

use serde::Serialize;

use super::{
    AppFields, FLAG_NAMES, FlowMeta, FlowRecord, Http, NbadHttp, NbadTls, Tls, Ts, Url, UserAgent,
    app_fields, community_id_v1, has_ports, tcp_state, tcp_state_name, transport_name,
};

#[derive(Serialize)]
pub(super) struct Ecs<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Ts,
    event: Event,
    source: Endpoint,
    destination: Endpoint,
    network: Network,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<Http<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Url<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<UserAgent<'a>>,
    observer: Observer<'a>,
    nbad: Nbad<'a>,
}

#[derive(Serialize)]
struct Event {
    kind: &'static str,
    category: [&'static str; 1],
    #[serde(rename = "type")]
    kind_type: [&'static str; 2],
    action: &'static str,
    reason: &'static str,
    start: Ts,
    end: Ts,
    duration: u64,
}

#[derive(Serialize)]
struct Endpoint {
    ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    bytes: u64,
    packets: u64,
}

#[derive(Serialize)]
struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    iana_number: NumStr,
    #[serde(rename = "type")]
    net_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inner: Option<InnerVlan>,
    bytes: u64,
    packets: u64,
    community_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
}

#[derive(Serialize)]
struct Vlan {
    id: NumStr,
}

/// A number written as a JSON string (ECS keywords such as `network.iana_number`).
#[derive(Debug, Clone, Copy)]
struct NumStr(u16);

/// TCP flags written as an array of names, without allocating.
#[derive(Debug, Clone, Copy)]
struct Flags(u8);

#[derive(Serialize)]
struct InnerVlan {
    vlan: Vlan,
}

#[derive(Serialize)]
struct Observer<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Nbad<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<Tcp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<NbadTls<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<NbadHttp>,
}

#[derive(Serialize)]
struct Tcp {
    state: &'static str,
    handshake: bool,
    source_flags: Flags,
    destination_flags: Flags,
}

pub(super) fn ecs<'a>(r: &FlowRecord, meta: Option<&'a FlowMeta>, observer: &'a str) -> Ecs<'a> {
    let AppFields { tls, http, url, user_agent, nbad_tls, nbad_http } = app_fields(meta);
    let proto = r.key.proto;
    let ports = has_ports(proto);
    let (cip, cport) = r.client_endpoint();
    let (sip, sport) = r.server_endpoint();
    let vlan = |id: u16| (id != 0).then_some(Vlan { id: NumStr(id) });
    Ecs {
        timestamp: Ts(r.end_ns),
        event: Event {
            kind: "event",
            category: ["network"],
            kind_type: ["connection", if r.reason.is_interim() { "info" } else { "end" }],
            action: if r.reason.is_interim() { "flow_interim" } else { "flow_end" },
            reason: r.reason.name(),
            start: Ts(r.start_ns),
            end: Ts(r.end_ns),
            duration: r.end_ns - r.start_ns,
        },
        source: Endpoint {
            ip: cip,
            port: ports.then_some(cport),
            bytes: r.client.bytes,
            packets: r.client.packets,
        },
        destination: Endpoint {
            ip: sip,
            port: ports.then_some(sport),
            bytes: r.server.bytes,
            packets: r.server.packets,
        },
        network: Network {
            transport: transport_name(proto),
            iana_number: NumStr(u16::from(proto)),
            net_type: if cip.is_ipv4() { "ipv4" } else { "ipv6" },
            vlan: vlan(r.key.vlan_outer),
            inner: vlan(r.key.vlan_inner).map(|vlan| InnerVlan { vlan }),
            bytes: r.bytes(),
            packets: r.packets(),
            community_id: community_id_v1(0, cip, cport, sip, sport, proto),
            protocol: meta.and_then(|m| m.protocol),
        },
        tls,
        http,
        url,
        user_agent,
        observer: Observer { name: observer },
        nbad: Nbad {
            tcp: (proto == 6).then(|| Tcp {
                state: tcp_state_name(r.tcp_state),
                handshake: r.tcp_state & tcp_state::ESTABLISHED != 0,
                source_flags: Flags(r.client.tcp_flags),
                destination_flags: Flags(r.server.tcp_flags),
            }),
            tls: nbad_tls,
            http: nbad_http,
        },
    }
}

impl Serialize for NumStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(self.0.count_ones() as usize))?;
        for (bit, name) in FLAG_NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                seq.serialize_element(name)?;
            }
        }
        seq.end()
    }
}
