"""A small Django project for the end-to-end tests of hotmesh_sync.contrib.django."""
