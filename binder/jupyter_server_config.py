# The Binder demo's Jupyter Server config (postBuild appends it to the environment's
# <sys.prefix>/etc/jupyter/jupyter_server_config.py). It turns on the demo identity:
# per-browser visitor names and `?role=viewer` links, INSECURE by design (every visitor
# picks their own role; see jupyter_collab/demo.py). Never use it with real data.
c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file
c.ServerApp.jpserver_extensions.update({"jupyter_collab": True, "jupyter_collab.demo": True})
c.CollabApp.permission_policy_class = "jupyter_collab.demo.DemoPolicy"
