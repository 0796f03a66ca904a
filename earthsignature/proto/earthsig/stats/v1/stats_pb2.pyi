from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AreaByDateRequest(_message.Message):
    __slots__ = ("wkt", "date_from", "date_to", "model", "version", "min_confidence")
    WKT_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    date_from: str
    date_to: str
    model: str
    version: int
    min_confidence: int
    def __init__(self, wkt: _Optional[str] = ..., date_from: _Optional[str] = ..., date_to: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., min_confidence: _Optional[int] = ...) -> None: ...

class ClassArea(_message.Message):
    __slots__ = ("code", "label", "area_m2")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    AREA_M2_FIELD_NUMBER: _ClassVar[int]
    code: int
    label: str
    area_m2: float
    def __init__(self, code: _Optional[int] = ..., label: _Optional[str] = ..., area_m2: _Optional[float] = ...) -> None: ...

class DateAreas(_message.Message):
    __slots__ = ("date", "classes", "cloud_m2", "product_ids", "low_confidence_m2", "unreadable")
    DATE_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CLOUD_M2_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    LOW_CONFIDENCE_M2_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    date: str
    classes: _containers.RepeatedCompositeFieldContainer[ClassArea]
    cloud_m2: float
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    low_confidence_m2: float
    unreadable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, date: _Optional[str] = ..., classes: _Optional[_Iterable[_Union[ClassArea, _Mapping]]] = ..., cloud_m2: _Optional[float] = ..., product_ids: _Optional[_Iterable[str]] = ..., low_confidence_m2: _Optional[float] = ..., unreadable: _Optional[_Iterable[str]] = ...) -> None: ...

class AreaByDateResponse(_message.Message):
    __slots__ = ("dates",)
    DATES_FIELD_NUMBER: _ClassVar[int]
    dates: _containers.RepeatedCompositeFieldContainer[DateAreas]
    def __init__(self, dates: _Optional[_Iterable[_Union[DateAreas, _Mapping]]] = ...) -> None: ...

class ChangeRequest(_message.Message):
    __slots__ = ("wkt", "date_from", "date_to", "model", "version", "min_confidence")
    WKT_FIELD_NUMBER: _ClassVar[int]
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    date_from: str
    date_to: str
    model: str
    version: int
    min_confidence: int
    def __init__(self, wkt: _Optional[str] = ..., date_from: _Optional[str] = ..., date_to: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., min_confidence: _Optional[int] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("from_code", "to_code", "area_m2")
    FROM_CODE_FIELD_NUMBER: _ClassVar[int]
    TO_CODE_FIELD_NUMBER: _ClassVar[int]
    AREA_M2_FIELD_NUMBER: _ClassVar[int]
    from_code: int
    to_code: int
    area_m2: float
    def __init__(self, from_code: _Optional[int] = ..., to_code: _Optional[int] = ..., area_m2: _Optional[float] = ...) -> None: ...

class ChangeResponse(_message.Message):
    __slots__ = ("date_from", "date_to", "transitions", "cloud_m2", "changed_m2", "product_ids", "low_confidence_m2")
    DATE_FROM_FIELD_NUMBER: _ClassVar[int]
    DATE_TO_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_M2_FIELD_NUMBER: _ClassVar[int]
    CHANGED_M2_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    LOW_CONFIDENCE_M2_FIELD_NUMBER: _ClassVar[int]
    date_from: str
    date_to: str
    transitions: _containers.RepeatedCompositeFieldContainer[Transition]
    cloud_m2: float
    changed_m2: float
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    low_confidence_m2: float
    def __init__(self, date_from: _Optional[str] = ..., date_to: _Optional[str] = ..., transitions: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ..., cloud_m2: _Optional[float] = ..., changed_m2: _Optional[float] = ..., product_ids: _Optional[_Iterable[str]] = ..., low_confidence_m2: _Optional[float] = ...) -> None: ...
