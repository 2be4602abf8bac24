"""Streamlit apps shipped inside the package (so ``curate review`` finds them in any install)."""
