"""Reads and validates the playbook file, so each run's history records what it used."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.model import LoadPlaybookInput
from workflows.playbook import Playbook, PlaybookError


def read_playbook(path: Path) -> Playbook:
    """Load and validate a playbook file; PlaybookError names the setting at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PlaybookError(f"{path}: cannot read playbook: {err.strerror}") from None
    try:
        return _parse(text)
    except yaml.YAMLError as err:
        raise PlaybookError(f"{path}: not valid YAML: {err}") from None


@functools.lru_cache(maxsize=16)
def _parse(text: str) -> Playbook:
    # Keyed by the file's content: every journey start reads the file (so edits apply at once),
    # but YAML parsing and validation happen once per version, not once per journey.
    return Playbook.from_dict(yaml.load(text, Loader=_LOADER))


# libyaml's loader when the wheel has it: same safe subset, several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PlaybookActivities:
    def __init__(self, path: Path) -> None:
        self.path = path

    @activity.defn(name="load_playbook")
    def load_playbook(self, input: LoadPlaybookInput) -> Playbook:
        try:
            # Read at every run start: an edited playbook reaches journeys at their next run.
            return read_playbook(Path(input.path) if input.path else self.path)
        except PlaybookError as err:
            # Retrying would not fix the file; a fixed file is picked up by the next attempt an operator starts.
            raise ApplicationError(str(err), type="PlaybookError", non_retryable=True) from None
