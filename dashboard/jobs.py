"""One heavy job at a time per session (LIME, filter and class patterns, a report).

A job runs in a background thread and puts its result in a :class:`~dashboard.state.SessionStore`
itself, so a click elsewhere (another tab, another layer) stops only the script run that was
drawing its progress bar, never the job: the page answers at once, and the tab that started the
job follows it again when it is drawn. While a job runs, another one does not start: its button
says so (``st.info``) and the user presses it again when the first is done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from dashboard.state import SessionStore

#: The session-state key of this session's latest job.
JOB = "_heavy_job"
#: Seconds between two redraws of a followed job's progress bar.
POLL_S = 0.1


@dataclass
class Job:
    """A job of one session: ``run(progress)`` in a thread, its result put in ``store`` under ``key``.

    ``progress(fraction, text)`` is called by the job (from its thread) with a fraction in [0, 1]
    and the text to show; :func:`follow` draws them. ``error`` is the exception the job raised.
    """

    label: str
    key: tuple
    store: SessionStore
    run: Callable[[Callable[[float, str], None]], object]
    text: str = ""
    fraction: float = 0.0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def progress(self, fraction: float, text: str) -> None:
        self.fraction, self.text = min(max(float(fraction), 0.0), 1.0), text

    def _work(self) -> None:
        try:
            self.store.put(self.key, self.run(self.progress))
        except BaseException as e:  # shown by the tab that follows the job
            self.error = e
        finally:
            self.done.set()


def running() -> Job | None:
    """This session's job that is still running, if any."""
    job = st.session_state.get(JOB)
    return job if isinstance(job, Job) and not job.done.is_set() else None


def start(label: str, key: tuple, store: SessionStore, run, text: str) -> Job | None:
    """Start ``run(progress)`` as this session's job, unless one is running: then say (``st.info``)
    that this one must wait for it, and return None. A job already running under ``key`` (a
    second click) is not started again: it is returned, to be followed."""
    current = running()
    if current is not None:
        if current.key == key:
            st.info(f"{label} is already running in this session; waiting for it to finish.")
            return current
        st.info(
            f"{current.label} is still running in this session; {label} must wait for it to finish. "
            "Press the button again when it is done."
        )
        return None
    job = Job(label, key, store, run, text=text)
    st.session_state[JOB] = job
    # not a daemon: a daemon thread stopped inside TensorFlow at exit aborts the process
    threading.Thread(target=job._work, name=f"explain-job-{label}", daemon=False).start()
    return job


def follow(key: tuple) -> None:
    """If this session's job is the one under ``key``, draw its progress until it is done (a
    click elsewhere ends this run, not the job), then raise its error if it failed."""
    job = st.session_state.get(JOB)
    if not isinstance(job, Job) or job.key != key:
        return
    bar = st.progress(job.fraction, text=job.text)
    try:
        while not job.done.wait(POLL_S):
            bar.progress(job.fraction, text=job.text)  # also where Streamlit stops this run for a click
    finally:
        bar.empty()
    if st.session_state.get(JOB) is job:
        del st.session_state[JOB]
    if job.error is not None:
        raise job.error
