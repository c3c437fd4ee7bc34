"""What every route needs (settings, Temporal client, database sessions, ingest), built once at startup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.playbook import read_playbook
from client.ingest import Ingest
from plumbing.config import Settings
from workflows.playbook import Playbook


@dataclass
class Deps:
    settings: Settings
    client: Client
    sessions: sessionmaker[Session]
    ingest: Ingest
    mapping: dict[str, dict[str, Any]]

    def playbook(self) -> Playbook:
        # Read per request (parsed once per content): an edited playbook applies without a restart.
        return read_playbook(self.settings.playbook_path)


def deps(request: Request) -> Deps:
    value: Deps = request.app.state.deps
    return value


AppDeps = Annotated[Deps, Depends(deps)]
