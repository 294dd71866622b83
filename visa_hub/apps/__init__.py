"""Scientific apps as versioned apptainer containers.

- :mod:`.catalog`     the app catalog (site YAML on shared storage) and her own registered images
- :mod:`.sif`         reading SIF files: the squashfs partition, its offset and digest (no external tool)
- :mod:`.images`      an image on disk (SIF or sandbox directory): checks and digests, with clear errors
- :mod:`.runtime`     command lines: production ``apptainer`` and the local runtime (squashfuse + bubblewrap)
- :mod:`.launch`      resolve, verify, record and start an app version (used by every front end)
- :mod:`.provenance`  the session's record of every app version launched (FAIR), kept in her home
- :mod:`.bundle`      a proposal cycle's pinned versions to take home: images, manifest, run script
- :mod:`.kernelspecs` a Jupyter kernel per app version that ships Python or Julia, live from the catalog
- :mod:`.menu`        the desktop's application menu (an openbox pipe menu)
- :mod:`.cli`         ``visa-app`` (list, info, run, register, bundle, reproduce, ...)

Only the standard library and PyYAML are needed here (plus ``jupyter_client`` for the kernel specs), so
``visa-app`` runs with an instance's dependencies alone.
"""
