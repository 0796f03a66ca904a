import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ....geobufproto import geobuf_pb2 as _geobuf_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListSegmentationRequest(_message.Message):
    __slots__ = ("wkt", "start_date", "end_date", "product_ids", "categories", "n_results")
    WKT_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    N_RESULTS_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[int]
    n_results: int
    def __init__(self, wkt: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., product_ids: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[int]] = ..., n_results: _Optional[int] = ...) -> None: ...

class SegmentationResponse(_message.Message):
    __slots__ = ("segmentation",)
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    segmentation: _geobuf_pb2.Data
    def __init__(self, segmentation: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class ListProductIdsRequest(_message.Message):
    __slots__ = ("wkt", "start_date", "end_date", "categories")
    WKT_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    categories: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, wkt: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., categories: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: _geobuf_pb2.Data
    def __init__(self, product: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
