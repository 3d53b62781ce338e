"""Face: the Streamlit plumbing the pages use (:mod:`~cellbench.app.ui`: error guard, caching keyed
by the store's files, figure export box, job progress).

A face may import every subpackage; nothing in the library imports it.
"""
