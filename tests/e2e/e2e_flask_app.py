"""A small Flask app using the HotMesh extension (application-factory style)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from hotmesh_sync import errors
from hotmesh_sync.contrib.flask import HotMesh

hm = HotMesh()


def create_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(HOTMESH_WORKFLOWS=["e2e_flask_flows"], HOTMESH_TASK_QUEUE="quotes",
                      PRICES={"pen": 2, "book": 15})
    app.config.update(config)
    hm.init_app(app)

    @app.post("/quotes")
    def start_quote() -> ResponseReturnValue:
        body = request.get_json()
        handle = hm.memflow.workflow.start("quote", [body["item"], body["qty"]],
                                           task_queue=app.config["HOTMESH_TASK_QUEUE"])
        return jsonify(workflow_id=handle.workflow_id), 202

    @app.get("/quotes/<workflow_id>")
    def quote_status(workflow_id: str) -> ResponseReturnValue:
        try:
            row = hm.memflow.workflow.get_handle(workflow_id).describe()
        except errors.WorkflowNotFoundError:
            return jsonify(error="no such quote"), 404
        return jsonify(workflow_id=workflow_id, status=row["status"], state=row["context"],
                       result=row["result"])

    @app.get("/health")
    def health() -> ResponseReturnValue:
        memflow = hm.memflow
        return jsonify(app_id=memflow.app_id, memflow=id(memflow), pool_closed=memflow.pool.closed)

    return app
