"""tessera.train"""
