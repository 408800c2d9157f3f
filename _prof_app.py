import runpy, os, time
from pyinstrument import Profiler
p = Profiler(interval=0.002); p.start()
t = time.perf_counter()
try:
    runpy.run_path(os.environ.get("APP", "/work/main/app.py"), run_name="__main__")
finally:
    p.stop()
    with open("/tmp/prof_out.txt", "a") as f:
        f.write(f"\n===== {os.environ.get('STEP','')} {time.perf_counter()-t:.3f}s\n")
        f.write(p.output_text(unicode=False, color=False))
