"""Entry point for ``streamlit run app/review.py -- RUN [REVIEWER]`` from a source checkout.

The app itself lives in ``curate/review/app.py`` (inside the package, so ``curate review`` finds it in
an installed package too); this file only runs it.
"""

from curate.review.app import main

main()
