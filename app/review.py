"""Entry point for ``streamlit run app/review.py -- RUN [REVIEWER]`` from a source checkout.

The app itself lives in ``curate/app/review.py`` (inside the package, so ``curate review`` finds it in
an installed package too); this file only runs it.
"""

from curate.app.review import main

main()
