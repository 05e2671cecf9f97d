"""The live deployment check (``make deploy-check``): a throwaway Airflow 3 deployment and its scenarios.

``check`` is the entry point, ``deployment`` the harness (with ``processes``, ``database`` and
``clients``), ``scenario`` the base of the scenarios (``gate_scenario``, ``watch_scenario``,
``browser_form``), ``report`` the output.
"""
