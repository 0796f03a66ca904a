from geobufproto import geobuf_pb2 as _geobuf_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListSegmentationRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: _geobuf_pb2.Data
    def __init__(self, query: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class SegmentationResponse(_message.Message):
    __slots__ = ("segmentation",)
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    segmentation: _geobuf_pb2.Data
    def __init__(self, segmentation: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class ListProductIdsRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: _geobuf_pb2.Data
    def __init__(self, query: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class ListProductIdsResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: _geobuf_pb2.Data
    def __init__(self, product: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: _geobuf_pb2.Data
    def __init__(self, product: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
