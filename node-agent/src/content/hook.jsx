// flatrender_hook.jsx version 1 (the FlatRender node agent's After Effects startup hook; the agent rewrites this file)
// After Effects runs every script in Scripts/Startup at launch, in name order, so this one runs
// after commandLineRenderer.jsx has created gAECommandLineRenderer, the object aerender drives.
// It wraps two of that object's methods and changes nothing else:
// - ParseParamStartingAt learns the flag -r <script>; every other flag goes to the stock parser.
// - GetFirstQueuedRQItemWithName, the first thing the renderer does once the project is open (to
//   find the queue item of -comp), first runs that script: the node agent's apply.jsx, which puts
//   a saved project's values into the working copy. When the script fails, the renderer's usual
//   error path reports it (exit code 9, 10 with -log):
//     aerender ERROR: Error executing script: <path>
//     Error: <the script's error>
// Without -r, aerender behaves exactly as it does without this file. docs/content.md section 3.
(function () {
    if (typeof gAECommandLineRenderer === "undefined" || !gAECommandLineRenderer) {
        return;
    }
    var renderer = gAECommandLineRenderer;
    // Loaded twice into one After Effects (a Startup folder run again): wrap once.
    if (renderer.flatrenderHookVersion) {
        return;
    }
    renderer.flatrenderHookVersion = 1;
    renderer.flatrenderScriptPath = null;

    var stockParseParamStartingAt = renderer.ParseParamStartingAt;
    var stockGetFirstQueuedRQItemWithName = renderer.GetFirstQueuedRQItemWithName;

    renderer.ParseParamStartingAt = function (arg_num) {
        // Every command line is parsed from its first argument: forget an earlier -r (-reuse).
        if (arg_num === 0) {
            this.flatrenderScriptPath = null;
        }
        if (this.inArgs && this.inArgs[arg_num] === "-r") {
            this.flatrenderScriptPath = this.GetValueForFlag(arg_num + 1, "-r");
            return 2;
        }
        return stockParseParamStartingAt.call(this, arg_num);
    };

    renderer.GetFirstQueuedRQItemWithName = function (comp_name) {
        var path = this.flatrenderScriptPath;
        if (path) {
            // Once per render, however often the lookup runs.
            this.flatrenderScriptPath = null;
            if (this.log_file != null) {
                this.log_file.writeln("PROGRESS: Running Script: " + path);
            }
            try {
                $.evalFile(new File(path));
            } catch (e) {
                this.SetExitCode(this.EXIT_AE_RUNTIME);
                throw "ERROR: Error executing script: " + path + "\n" + e.toString();
            }
        }
        return stockGetFirstQueuedRQItemWithName.call(this, comp_name);
    };
}());
