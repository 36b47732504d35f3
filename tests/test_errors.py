"""Worker errors are parsed and shown, never dropped."""

import json

from rp_notebook.errors import JobFailedError, RunpodError


def test_sdk_json_error_string_is_parsed_into_type_message_and_traceback():
    raw = json.dumps(
        {
            "error_type": "<class 'ZeroDivisionError'>",
            "error_message": "division by zero",
            "error_traceback": "Traceback (most recent call last):\n...",
            "worker_id": "w1",
        }
    )
    error = JobFailedError("job-1", raw)
    assert str(error) == "job job-1 failed: ZeroDivisionError: division by zero"
    assert error.worker_traceback.startswith("Traceback")
    assert error.raw_error == raw
    assert error.details["worker_id"] == "w1"


def test_plain_text_error_is_kept_as_is():
    error = JobFailedError("job-2", "text: is required")
    assert str(error) == "job job-2 failed: text: is required"
    assert error.details is None


def test_errors_render_as_one_line_in_ipython():
    lines = RunpodError("something broke")._render_traceback_()
    assert len(lines) == 1 and "something broke" in lines[0]
