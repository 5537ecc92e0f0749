"""Documents made from the engine's data, shared by every shell (the CLI writes them to files, the
web front serves them as downloads): the monthly report as one self-contained HTML page with its
charts drawn as SVG (:mod:`.report`, :mod:`.charts`), a round's questionnaires as Excel workbooks
(:mod:`.forms`), and rows as a workbook (:mod:`.sheets`). Nothing here reads the store: each takes
the plain data the embedding API returns."""
