"""The ClinicalModel operator: pure builders and decisions, thin kopf handlers.

`equiguard.kube` is the only module that talks to the API server.
"""
