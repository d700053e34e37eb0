"""``facegate serve``: the office door as an HTTP service (FastAPI), with a web console.

Needs the ``serve`` extra (``pip install 'facegate[serve]'``); the core never imports
this package. ``create_app(settings)`` builds the application (:mod:`.app`); each
worker process opens the gallery once and runs every gallery operation on one
thread of its own, off the event loop (:mod:`.runner`).
"""
