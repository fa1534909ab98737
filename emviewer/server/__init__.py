"""Online-mode server: a FastAPI app that runs the core predictor for remote clients.

Nothing runs at import: ``create_app(settings)`` builds the app, ``serve(settings)`` runs it
with uvicorn. Models are loaded once when the app starts (its lifespan).
"""
