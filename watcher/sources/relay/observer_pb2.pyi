import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_TYPE: _ClassVar[FlowType]
    L3_L4: _ClassVar[FlowType]
    L7: _ClassVar[FlowType]
    SOCK: _ClassVar[FlowType]

class L7FlowType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_L7_TYPE: _ClassVar[L7FlowType]
    REQUEST: _ClassVar[L7FlowType]
    RESPONSE: _ClassVar[L7FlowType]
    SAMPLE: _ClassVar[L7FlowType]

class IPVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IP_NOT_USED: _ClassVar[IPVersion]
    IPv4: _ClassVar[IPVersion]
    IPv6: _ClassVar[IPVersion]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNKNOWN: _ClassVar[Verdict]
    FORWARDED: _ClassVar[Verdict]
    DROPPED: _ClassVar[Verdict]
    ERROR: _ClassVar[Verdict]
    AUDIT: _ClassVar[Verdict]
    REDIRECTED: _ClassVar[Verdict]
    TRACED: _ClassVar[Verdict]
    TRANSLATED: _ClassVar[Verdict]

class TrafficDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAFFIC_DIRECTION_UNKNOWN: _ClassVar[TrafficDirection]
    INGRESS: _ClassVar[TrafficDirection]
    EGRESS: _ClassVar[TrafficDirection]

class LostEventSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_LOST_EVENT_SOURCE: _ClassVar[LostEventSource]
    PERF_EVENT_RING_BUFFER: _ClassVar[LostEventSource]
    OBSERVER_EVENTS_QUEUE: _ClassVar[LostEventSource]
    HUBBLE_RING_BUFFER: _ClassVar[LostEventSource]

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_NODE_STATE: _ClassVar[NodeState]
    NODE_CONNECTED: _ClassVar[NodeState]
    NODE_UNAVAILABLE: _ClassVar[NodeState]
    NODE_GONE: _ClassVar[NodeState]
    NODE_ERROR: _ClassVar[NodeState]
UNKNOWN_TYPE: FlowType
L3_L4: FlowType
L7: FlowType
SOCK: FlowType
UNKNOWN_L7_TYPE: L7FlowType
REQUEST: L7FlowType
RESPONSE: L7FlowType
SAMPLE: L7FlowType
IP_NOT_USED: IPVersion
IPv4: IPVersion
IPv6: IPVersion
VERDICT_UNKNOWN: Verdict
FORWARDED: Verdict
DROPPED: Verdict
ERROR: Verdict
AUDIT: Verdict
REDIRECTED: Verdict
TRACED: Verdict
TRANSLATED: Verdict
TRAFFIC_DIRECTION_UNKNOWN: TrafficDirection
INGRESS: TrafficDirection
EGRESS: TrafficDirection
UNKNOWN_LOST_EVENT_SOURCE: LostEventSource
PERF_EVENT_RING_BUFFER: LostEventSource
OBSERVER_EVENTS_QUEUE: LostEventSource
HUBBLE_RING_BUFFER: LostEventSource
UNKNOWN_NODE_STATE: NodeState
NODE_CONNECTED: NodeState
NODE_UNAVAILABLE: NodeState
NODE_GONE: NodeState
NODE_ERROR: NodeState

class GetFlowsRequest(_message.Message):
    __slots__ = ("number", "first", "follow", "blacklist", "whitelist", "since", "until")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    BLACKLIST_FIELD_NUMBER: _ClassVar[int]
    WHITELIST_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    number: int
    first: bool
    follow: bool
    blacklist: _containers.RepeatedCompositeFieldContainer[FlowFilter]
    whitelist: _containers.RepeatedCompositeFieldContainer[FlowFilter]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., first: _Optional[bool] = ..., follow: _Optional[bool] = ..., blacklist: _Optional[_Iterable[_Union[FlowFilter, _Mapping]]] = ..., whitelist: _Optional[_Iterable[_Union[FlowFilter, _Mapping]]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFlowsResponse(_message.Message):
    __slots__ = ("flow", "node_status", "lost_events", "node_name", "time")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    NODE_STATUS_FIELD_NUMBER: _ClassVar[int]
    LOST_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    node_status: NodeStatusEvent
    lost_events: LostEvent
    node_name: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., node_status: _Optional[_Union[NodeStatusEvent, _Mapping]] = ..., lost_events: _Optional[_Union[LostEvent, _Mapping]] = ..., node_name: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("time", "uuid", "verdict", "IP", "source", "destination", "Type", "node_name", "l7", "event_type", "traffic_direction", "is_reply", "Summary")
    TIME_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    L7_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    IS_REPLY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    uuid: str
    verdict: Verdict
    IP: IP
    source: Endpoint
    destination: Endpoint
    Type: FlowType
    node_name: str
    l7: Layer7
    event_type: CiliumEventType
    traffic_direction: TrafficDirection
    is_reply: _wrappers_pb2.BoolValue
    Summary: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uuid: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., IP: _Optional[_Union[IP, _Mapping]] = ..., source: _Optional[_Union[Endpoint, _Mapping]] = ..., destination: _Optional[_Union[Endpoint, _Mapping]] = ..., Type: _Optional[_Union[FlowType, str]] = ..., node_name: _Optional[str] = ..., l7: _Optional[_Union[Layer7, _Mapping]] = ..., event_type: _Optional[_Union[CiliumEventType, _Mapping]] = ..., traffic_direction: _Optional[_Union[TrafficDirection, str]] = ..., is_reply: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., Summary: _Optional[str] = ...) -> None: ...

class Layer7(_message.Message):
    __slots__ = ("type", "latency_ns", "dns")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_NS_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    type: L7FlowType
    latency_ns: int
    dns: DNS
    def __init__(self, type: _Optional[_Union[L7FlowType, str]] = ..., latency_ns: _Optional[int] = ..., dns: _Optional[_Union[DNS, _Mapping]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("ID", "identity", "namespace", "labels", "pod_name", "workloads")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    ID: int
    identity: int
    namespace: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    pod_name: str
    workloads: _containers.RepeatedCompositeFieldContainer[Workload]
    def __init__(self, ID: _Optional[int] = ..., identity: _Optional[int] = ..., namespace: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., pod_name: _Optional[str] = ..., workloads: _Optional[_Iterable[_Union[Workload, _Mapping]]] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("name", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class IP(_message.Message):
    __slots__ = ("source", "destination", "ipVersion", "encrypted")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    IPVERSION_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    ipVersion: IPVersion
    encrypted: bool
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ..., ipVersion: _Optional[_Union[IPVersion, str]] = ..., encrypted: _Optional[bool] = ...) -> None: ...

class CiliumEventType(_message.Message):
    __slots__ = ("type", "sub_type")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SUB_TYPE_FIELD_NUMBER: _ClassVar[int]
    type: int
    sub_type: int
    def __init__(self, type: _Optional[int] = ..., sub_type: _Optional[int] = ...) -> None: ...

class DNS(_message.Message):
    __slots__ = ("query", "ips", "ttl", "cnames", "observation_source", "rcode", "qtypes", "rrtypes")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    CNAMES_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_SOURCE_FIELD_NUMBER: _ClassVar[int]
    RCODE_FIELD_NUMBER: _ClassVar[int]
    QTYPES_FIELD_NUMBER: _ClassVar[int]
    RRTYPES_FIELD_NUMBER: _ClassVar[int]
    query: str
    ips: _containers.RepeatedScalarFieldContainer[str]
    ttl: int
    cnames: _containers.RepeatedScalarFieldContainer[str]
    observation_source: str
    rcode: int
    qtypes: _containers.RepeatedScalarFieldContainer[str]
    rrtypes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., ips: _Optional[_Iterable[str]] = ..., ttl: _Optional[int] = ..., cnames: _Optional[_Iterable[str]] = ..., observation_source: _Optional[str] = ..., rcode: _Optional[int] = ..., qtypes: _Optional[_Iterable[str]] = ..., rrtypes: _Optional[_Iterable[str]] = ...) -> None: ...

class FlowFilter(_message.Message):
    __slots__ = ("source_pod", "destination_pod", "verdict", "protocol", "dns_query", "node_name")
    SOURCE_POD_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_POD_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DNS_QUERY_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    source_pod: _containers.RepeatedScalarFieldContainer[str]
    destination_pod: _containers.RepeatedScalarFieldContainer[str]
    verdict: _containers.RepeatedScalarFieldContainer[Verdict]
    protocol: _containers.RepeatedScalarFieldContainer[str]
    dns_query: _containers.RepeatedScalarFieldContainer[str]
    node_name: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, source_pod: _Optional[_Iterable[str]] = ..., destination_pod: _Optional[_Iterable[str]] = ..., verdict: _Optional[_Iterable[_Union[Verdict, str]]] = ..., protocol: _Optional[_Iterable[str]] = ..., dns_query: _Optional[_Iterable[str]] = ..., node_name: _Optional[_Iterable[str]] = ...) -> None: ...

class LostEvent(_message.Message):
    __slots__ = ("source", "num_events_lost", "cpu")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NUM_EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    source: LostEventSource
    num_events_lost: int
    cpu: _wrappers_pb2.Int32Value
    def __init__(self, source: _Optional[_Union[LostEventSource, str]] = ..., num_events_lost: _Optional[int] = ..., cpu: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ...) -> None: ...

class NodeStatusEvent(_message.Message):
    __slots__ = ("state_change", "node_names", "message")
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAMES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state_change: NodeState
    node_names: _containers.RepeatedScalarFieldContainer[str]
    message: str
    def __init__(self, state_change: _Optional[_Union[NodeState, str]] = ..., node_names: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ...) -> None: ...
