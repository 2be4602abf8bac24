"""The review queue behind ``curate review``: which items need a person, their flags, scores and status.

Kept apart from the Streamlit code (``curate/review/app.py``) so that the queue logic is plain Python,
testable without a browser, and reusable (e.g. by ``curate decisions``).
"""

from curate.review.queue import Query, ReviewQueue, build_index, item_details, open_queue

__all__ = ["Query", "ReviewQueue", "build_index", "item_details", "open_queue"]
