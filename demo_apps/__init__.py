"""Realistic apps that the workflow features are built, demonstrated and tested against; not shipped.

``expense_portal`` is a small web app with its own SQLite database (login, a multi-page expense claim,
a weekly report, switchable faults); ``invoices`` writes invoice PDFs (zh and en, three layouts) from a
seed together with the values a correct claim must hold; ``texts`` writes the cost list and the weekly
notes that the tests and the ``shadowdesk up --scenario expense`` demo open in a text editor. Nothing of
the product imports this package (tests/test_layering.py): the demo starts it as ``python -m demo_apps``.
"""
