"""POST /replay refuses a bad request up front with the reason and what to do; unknown ids are 404."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.config import KafkaSettings, LocalSettings, ReadStoreSettings, RegistrySettings, Settings


def client(tmp_path: Path, read_store: Path | None = None) -> TestClient:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        registry=RegistrySettings(url="http://127.0.0.1:1/apis/ccompat/v7"),
        read_store=ReadStoreSettings(url=f"sqlite:///{read_store or tmp_path / 'read.db'}"),
        local=LocalSettings(data_dir=tmp_path),
    )
    return TestClient(create_app(settings, background=False))


def test_a_bad_replay_request_is_a_400_with_a_hint(tmp_path: Path) -> None:
    """An unknown read model, an instant in the future and the live store as target are each refused."""
    live_store = tmp_path / "replays" / "read.db"  # where a replay could go: only "live" stops it
    api = client(tmp_path, live_store)
    into = f"sqlite:///{tmp_path / 'replays' / 'pit.db'}"
    tomorrow = str(int(time.time() * 1000) + 86_400_000)

    unknown = api.post("/replay", json={"as_of": "2026-01-01", "read_model": "nope", "into": into})
    future = api.post("/replay", json={"as_of": tomorrow, "read_model": "mirror", "into": into})
    live = api.post(
        "/replay",
        json={"as_of": "2026-01-01", "read_model": "mirror", "into": f"sqlite:///{live_store}"},
    )

    assert unknown.status_code == 400 and "store_sales" in unknown.json()["detail"]["hint"]
    assert future.status_code == 400 and "in the future" in future.json()["detail"]["error"]
    assert live.status_code == 400 and "live read store" in live.json()["detail"]["error"]


def test_an_unknown_replay_id_is_404(tmp_path: Path) -> None:
    """Following a replay that was never started answers 404 naming the id."""
    answer = client(tmp_path).get("/replay/abc123")

    assert answer.status_code == 404 and "abc123" in answer.json()["detail"]


def test_a_replay_over_http_builds_stores_only_where_allowed(tmp_path: Path) -> None:
    """A SQLite file outside the replay directory (also by ../) or another database not listed in
    api.replay_urls is refused before anything is opened, with where it may go."""
    api = client(tmp_path)
    base = {"as_of": "2026-01-01", "read_model": "mirror"}
    targets = [
        "sqlite:////etc/unsilo-pit.db",
        f"sqlite:///{tmp_path / 'replays' / '..' / 'escape.db'}",
        "sqlite:///relative.db",
        "postgresql://postgres@127.0.0.1:5432/postgres",
    ]

    answers = [api.post("/replay", json={**base, "into": into}) for into in targets]

    for into, answer in zip(targets, answers, strict=True):
        assert answer.status_code == 400, (into, answer.text)
        assert str(tmp_path / "replays") in answer.json()["detail"]["hint"]
    assert not Path("/etc/unsilo-pit.db").exists() and not (tmp_path / "escape.db").exists()
