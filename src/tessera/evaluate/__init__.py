"""tessera.evaluate"""
