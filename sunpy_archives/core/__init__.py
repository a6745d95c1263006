"""
What every archive client does the same way: settings, HTTP sessions with
retries, errors, result tables and download jobs.
"""
