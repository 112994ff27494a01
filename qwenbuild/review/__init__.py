"""Design reviews: the review page and what it decides.

- `page.py`: the review page, `<out>/index.html` and its data files (`ReviewPageStep`);
- `decisions.py`: the review file beside the campaign (decisions, comments, locks, picks);
  a leaf module, read by planning, the executor, exports and the CLI;
- `actions.py`: making a decision (approve, reject, pick, comment; promoting a candidate),
  for the CLI and the page's server;
- `server.py`: the local server of `watch` and `review` (live reload, the review API);
- `compare.py`: the image an output held before (git HEAD, or the previous build).

This package imports nothing itself, so importing `review.decisions` stays cheap and
acyclic.
"""
