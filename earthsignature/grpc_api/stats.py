"""The ``earthsig.stats.v1.LandCoverStats`` servicer: class areas per date and change."""

from __future__ import annotations

import datetime as dt

import grpc

from earthsignature import stats
from earthsignature.grpc_api.errors import BadRequest, handle_errors
from earthsignature.grpc_api.state import ApiState
from earthsignature.proto.stats_stubs import stats_pb2, stats_pb2_grpc
from earthsignature.stats.convert import label

SERVICE_NAME = stats_pb2.DESCRIPTOR.services_by_name["LandCoverStats"].full_name


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{what} must be a date YYYY-MM-DD, got {text!r}") from None


class LandCoverStats(stats_pb2_grpc.LandCoverStatsServicer):
    """Answers from the store's committed segmentations (no copy, no index needed)."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def _model(self, model: str, version: int) -> tuple[str, int]:
        if version < 0:
            raise BadRequest(f"version must be positive, got {version}")
        return model or self.state.settings.model_name, version or self.state.settings.model_version

    @handle_errors
    def AreaByDate(
        self, request: stats_pb2.AreaByDateRequest, context: grpc.ServicerContext
    ) -> stats_pb2.AreaByDateResponse:
        start, end = _date(request.date_from, "date_from"), _date(request.date_to, "date_to")
        if end < start:
            raise BadRequest("date_to is before date_from")
        model, version = self._model(request.model, request.version)
        results = stats.area_by_date(
            self.state.store,
            stats.parse_aoi(request.wkt),
            start,
            end,
            model=model,
            version=version,
            min_confidence=request.min_confidence or None,
        )
        return stats_pb2.AreaByDateResponse(
            dates=[
                stats_pb2.DateAreas(
                    date=r.date.isoformat(),
                    classes=[
                        stats_pb2.ClassArea(code=c, label=label(c), area_m2=a)
                        for c, a in sorted(r.class_areas.items())
                    ],
                    cloud_m2=r.cloud_m2,
                    product_ids=r.product_ids,
                    low_confidence_m2=r.low_confidence_m2,
                    unreadable=[str(exc) for exc in r.unreadable],
                )
                for r in results
            ]
        )

    @handle_errors
    def Change(
        self, request: stats_pb2.ChangeRequest, context: grpc.ServicerContext
    ) -> stats_pb2.ChangeResponse:
        first, second = _date(request.date_from, "date_from"), _date(request.date_to, "date_to")
        model, version = self._model(request.model, request.version)
        result = stats.change(
            self.state.store,
            stats.parse_aoi(request.wkt),
            first,
            second,
            model=model,
            version=version,
            min_confidence=request.min_confidence or None,
        )
        return stats_pb2.ChangeResponse(
            date_from=first.isoformat(),
            date_to=second.isoformat(),
            transitions=[
                stats_pb2.Transition(from_code=f, to_code=t, area_m2=a)
                for (f, t), a in result.transitions.items()
            ],
            cloud_m2=result.cloud_m2,
            changed_m2=result.changed_m2,
            product_ids=result.product_ids,
            low_confidence_m2=result.low_confidence_m2,
        )
