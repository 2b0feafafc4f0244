"""End-to-end recipes on real data, written on fnnet's public API only.

Run them from the repo root: ``python -m recipes.house_prices``, ``python -m recipes.sentiment``,
``python -m recipes.knn`` (``--help`` lists each one's options).
"""
