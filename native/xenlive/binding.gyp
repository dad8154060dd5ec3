{
  "targets": [
    {
      "target_name": "xenlive",
      "sources": ["xenlive.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-lxenctrl", "-lxenforeignmemory", "-lxenstore", "-lxentoollog"]
    }
  ]
}
