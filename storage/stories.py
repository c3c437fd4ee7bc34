"""Stories told on a case-study ask's page: one row per customer and ask, a second submission updates it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Story

STORY_FIELDS = ("challenge", "change", "results", "quote", "interview_time")


def save_story(
    sessions: sessionmaker[Session], customer_id: str, ask_id: str, fields: dict[str, str], may_name: bool,
    now: datetime,
) -> Story:  # fmt: skip
    """Insert or update the story of (customer_id, ask_id); two submissions at once still leave one row."""
    for attempt in range(2):
        try:
            with sessions.begin() as session:
                story = session.scalar(select(Story).where(Story.customer_id == customer_id, Story.ask_id == ask_id))
                if story is None:
                    story = Story(customer_id=customer_id, ask_id=ask_id, submissions=0, created_at=now)
                    session.add(story)
                for name in STORY_FIELDS:
                    setattr(story, name, fields[name])
                story.may_name, story.updated_at = may_name, now
                story.submissions += 1
                session.flush()
                session.expunge(story)
                return story
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")
