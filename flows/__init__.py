"""Thin Prefect flows and tasks over the CareCast core; they pass ids and names, never objects."""
