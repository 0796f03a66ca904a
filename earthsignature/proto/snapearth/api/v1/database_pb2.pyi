import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import empty_pb2 as _empty_pb2
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
    categories: _containers.RepeatedScalarFieldContainer[str]
    n_results: int
    def __init__(self, wkt: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., product_ids: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., n_results: _Optional[int] = ...) -> None: ...

class SegmentationResponse(_message.Message):
    __slots__ = ("wkt", "segmentation", "cloud_mask", "product_id", "quicklook", "product_type", "publication_date", "creation_date", "cloud_cover", "browse_url", "download_url")
    WKT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    CLOUD_MASK_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUICKLOOK_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PUBLICATION_DATE_FIELD_NUMBER: _ClassVar[int]
    CREATION_DATE_FIELD_NUMBER: _ClassVar[int]
    CLOUD_COVER_FIELD_NUMBER: _ClassVar[int]
    BROWSE_URL_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    segmentation: bytes
    cloud_mask: bytes
    product_id: str
    quicklook: str
    product_type: str
    publication_date: _timestamp_pb2.Timestamp
    creation_date: _timestamp_pb2.Timestamp
    cloud_cover: float
    browse_url: str
    download_url: str
    def __init__(self, wkt: _Optional[str] = ..., segmentation: _Optional[bytes] = ..., cloud_mask: _Optional[bytes] = ..., product_id: _Optional[str] = ..., quicklook: _Optional[str] = ..., product_type: _Optional[str] = ..., publication_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., creation_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cloud_cover: _Optional[float] = ..., browse_url: _Optional[str] = ..., download_url: _Optional[str] = ...) -> None: ...

class ListProductIdsRequest(_message.Message):
    __slots__ = ("wkt", "start_date", "end_date", "categories")
    WKT_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, wkt: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ProductId(_message.Message):
    __slots__ = ("wkt", "product_id", "publication_date", "creation_date")
    WKT_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLICATION_DATE_FIELD_NUMBER: _ClassVar[int]
    CREATION_DATE_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    product_id: str
    publication_date: _timestamp_pb2.Timestamp
    creation_date: _timestamp_pb2.Timestamp
    def __init__(self, wkt: _Optional[str] = ..., product_id: _Optional[str] = ..., publication_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., creation_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("data", "segmentation", "cloud_mask")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    CLOUD_MASK_FIELD_NUMBER: _ClassVar[int]
    data: _geobuf_pb2.Data
    segmentation: bytes
    cloud_mask: bytes
    def __init__(self, data: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ..., segmentation: _Optional[bytes] = ..., cloud_mask: _Optional[bytes] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchSegmentationRequest(_message.Message):
    __slots__ = ("query", "n_results", "descriptor_set")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    N_RESULTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    query: str
    n_results: int
    descriptor_set: _descriptor_pb2.FileDescriptorSet
    def __init__(self, query: _Optional[str] = ..., n_results: _Optional[int] = ..., descriptor_set: _Optional[_Union[_descriptor_pb2.FileDescriptorSet, _Mapping]] = ...) -> None: ...
