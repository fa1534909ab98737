"""Client side of online mode: send a stack to an EMViewer server and get its predictions back.

``RemotePredictor`` implements the same ``Predictor`` protocol as the local predictor, so the
command line and the app do not care which one runs. ``schemas`` holds the request and
response bodies shared with the server.
"""
