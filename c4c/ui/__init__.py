"""The web app's building blocks, kept out of `app.py` so it stays a thin layout file.

`hub` finds the model zoo (a folder, or a Hugging Face Hub repo on Spaces), `service` runs one
request (limits, settings, the pipeline call, the JSON download), `view` turns a CaptionResult into
what the page shows, and `figures` draws its two matplotlib plots. The Explore page: `explore` (a
results file's rows, filters, paging), `explore_figures` (corpus plots), `explore_page` (its layout). Nothing here holds state between
requests except the read-only Pipeline it is handed."""
