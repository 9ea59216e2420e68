"""Read endpoints over the read models: ``GET /read-models`` and ``GET /read-models/{name}``.

Which read models exist, and the table or view each is read from, comes from the
``unsilo.read_models`` entry point group (projections publishes it; hub imports none of
it). Rows are filtered by ``column=value`` query parameters on the relation's own columns,
paginated with ``limit`` and ``offset``, ordered by the first column.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import Engine, MetaData, Table, create_engine, func, select
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from hub.config import Settings
from hub.sql_urls import engine_url

RESERVED = {"limit", "offset"}


def relations(settings: Settings) -> dict[str, str]:
    """Read model name -> the table or view users read, from the installed plugins (given the
    settings: the mirror read model has one table per configured source table)."""
    found: dict[str, str] = {}
    for entry in entry_points(group="unsilo.read_models"):
        found.update(entry.load()(settings))
    return found


def read_model_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/read-models", tags=["read models"])
    engine: Engine = create_engine(engine_url(settings.read_store.url))

    @router.get("")
    def list_read_models() -> dict[str, Any]:
        """The read models and the relation each is read from."""
        return {"read_models": [{"name": n, "relation": r} for n, r in sorted(relations(settings).items())]}

    @router.get("/{name}")
    def read_model_rows(
        name: str,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Rows of one read model; any other query parameter filters a column by equality."""
        known = relations(settings)
        relation = known.get(name)
        if relation is None:
            raise HTTPException(404, f"unknown read model {name!r}; known: {', '.join(sorted(known))}")
        try:
            table = Table(relation, MetaData(), autoload_with=engine)
        except NoSuchTableError as exc:
            raise HTTPException(503, f"{name} is not built yet: start `unsilo project {name}`") from exc
        filters = {k: v for k, v in request.query_params.items() if k not in RESERVED}
        unknown = sorted(set(filters) - set(table.c.keys()))
        if unknown:
            raise HTTPException(400, f"unknown column(s) {unknown}; columns: {list(table.c.keys())}")
        query = select(table)
        for column, value in filters.items():
            query = query.where(table.c[column] == value)
        try:
            with engine.connect() as conn:
                total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
                first = next(iter(table.c))
                rows = conn.execute(query.order_by(first).limit(limit).offset(offset)).mappings().all()
        except SQLAlchemyError as exc:
            raise HTTPException(503, f"cannot read {name}: {exc.__class__.__name__}") from exc
        return {
            "read_model": name,
            "total": total,
            "limit": limit,
            "offset": offset,
            "rows": [{k: _json(v) for k, v in row.items()} for row in rows],
        }

    return router


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return str(value)
