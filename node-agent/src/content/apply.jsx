// FlatRender apply code (node-agent/src/content/apply.jsx), the same for every render: puts the
// values of FLATRENDER_DATA (the data line above, written by the node agent) into the working
// copy of the template, before aerender looks up the composition to render. docs/content.md
// section 3 has the contract. ExtendScript is ES3: no JSON, no let/const, no arrow functions,
// no Array.prototype.indexOf, no String.prototype.trim.
(function (data) {
    // A message stays on one line: it quotes template and request names.
    function oneLine(text) {
        return String(text).replace(/[\r\n\t\u2028\u2029]+/g, " ");
    }

    function describe(error) {
        return (error && error.message) ? String(error.message) : String(error);
    }

    // The one way this script reports a problem; the node agent classifies the line it becomes.
    function fail(field, reason) {
        throw new Error(oneLine("flatrender: field \"" + field.key + "\" (layer \"" + field.layer + "\"): " + reason));
    }

    function trim(text) {
        return String(text).replace(/^\s+|\s+$/g, "");
    }

    // Runs change(); an After Effects error becomes this field's error.
    function attempt(field, what, change) {
        try {
            change();
        } catch (error) {
            fail(field, "cannot set " + what + ": " + describe(error));
        }
    }

    function findComposition(name) {
        for (var i = 1; i <= app.project.numItems; i++) {
            var item = app.project.item(i);
            if (item instanceof CompItem && item.name === name) {
                return item;
            }
        }
        return null;
    }

    // The first layer of that name (top of the layer stack first).
    function findLayer(comp, name) {
        for (var i = 1; i <= comp.numLayers; i++) {
            var layer = comp.layer(i);
            if (layer.name === name) {
                return layer;
            }
        }
        return null;
    }

    // The property at a ">"-separated path below the layer (names or match names), or null.
    function findProperty(layer, path) {
        var steps = path.split(">");
        var current = layer;
        try {
            for (var i = 0; i < steps.length; i++) {
                if (current.propertyType === PropertyType.PROPERTY) {
                    return null;
                }
                current = current.property(trim(steps[i]));
                if (!current) {
                    return null;
                }
            }
        } catch (error) {
            return null;
        }
        return current.propertyType === PropertyType.PROPERTY ? current : null;
    }

    // Sets a property, at every keyframe when it is animated.
    function setValue(field, property, value, what) {
        attempt(field, what, function () {
            if (property.numKeys > 0) {
                for (var k = 1; k <= property.numKeys; k++) {
                    property.setValueAtKey(k, value);
                }
            } else {
                property.setValue(value);
            }
        });
    }

    // Replaces the text of a text document property, keeping each keyframe's style.
    function setText(field, property, text, what) {
        attempt(field, what, function () {
            var document;
            if (property.numKeys > 0) {
                for (var k = 1; k <= property.numKeys; k++) {
                    document = property.keyValue(k);
                    document.text = text;
                    property.setValueAtKey(k, document);
                }
            } else {
                document = property.value;
                document.text = text;
                property.setValue(document);
            }
        });
    }

    function isSolidLayer(layer) {
        return layer instanceof AVLayer && layer.source instanceof FootageItem &&
            layer.source.mainSource instanceof SolidSource;
    }

    function isFootageLayer(layer) {
        return layer instanceof AVLayer && layer.source instanceof FootageItem &&
            !(layer.source.mainSource instanceof SolidSource);
    }

    // Imports an asset once per render, however many fields use it.
    function importAsset(field, imported) {
        var path = field.path;
        var fileName = path.replace(/^.*[\\\/]/, "");
        if (imported.hasOwnProperty(path)) {
            return imported[path];
        }
        var file = new File(path);
        if (!file.exists) {
            fail(field, "cannot import \"" + fileName + "\": the file is missing");
        }
        try {
            imported[path] = app.project.importFile(new ImportOptions(file));
        } catch (error) {
            fail(field, "cannot import \"" + fileName + "\": " + describe(error));
        }
        return imported[path];
    }

    // The property a field names, or null when it names none; fails when it names a missing one.
    function namedProperty(field, layer) {
        if (field.property === "") {
            return null;
        }
        var property = findProperty(layer, field.property);
        if (!property) {
            fail(field, "no property \"" + field.property + "\"");
        }
        return property;
    }

    function applyField(comp, field, imported) {
        var layer = findLayer(comp, field.layer);
        if (!layer) {
            fail(field, "no layer of that name in composition \"" + comp.name + "\"");
        }
        var property;
        var what = "\"" + field.property + "\"";
        switch (field.kind) {
        case "text":
        case "select":
            property = namedProperty(field, layer);
            if (!property) {
                if (!(layer instanceof TextLayer)) {
                    fail(field, "not a text layer");
                }
                property = layer.property("ADBE Text Properties").property("ADBE Text Document");
                what = "the Source Text";
            }
            setText(field, property, field.kind === "text" ? field.text : field.select, what);
            break;
        case "number":
            property = namedProperty(field, layer);
            if (!property) {
                fail(field, "needs a property");
            }
            setValue(field, property, field.number, what);
            break;
        case "boolean":
            property = namedProperty(field, layer);
            if (property) {
                setValue(field, property, field.boolean ? 1 : 0, what);
            } else {
                attempt(field, "the layer's visibility", function () {
                    layer.enabled = field.boolean;
                });
            }
            break;
        case "color":
            property = namedProperty(field, layer);
            if (property) {
                setValue(field, property, field.color, what);
            } else {
                if (!isSolidLayer(layer)) {
                    fail(field, "not a solid layer");
                }
                attempt(field, "the solid's colour", function () {
                    layer.source.mainSource.color = [field.color[0], field.color[1], field.color[2]];
                });
            }
            break;
        case "image":
        case "video":
        case "audio":
            if (!isFootageLayer(layer)) {
                fail(field, "not a footage layer");
            }
            var footage = importAsset(field, imported);
            attempt(field, "the layer's source", function () {
                layer.replaceSource(footage, false);
            });
            break;
        case "character":
            if (!(layer instanceof AVLayer && layer.source instanceof CompItem)) {
                fail(field, "not a precomp layer");
            }
            var character = findComposition(field.character);
            if (!character) {
                fail(field, "no composition \"" + field.character + "\"");
            }
            attempt(field, "the layer's source", function () {
                layer.replaceSource(character, false);
            });
            break;
        default:
            fail(field, "unknown kind \"" + field.kind + "\"");
        }
    }

    if (data.version !== 1) {
        throw new Error("flatrender: data version " + data.version + ", this apply code reads version 1");
    }
    var comp = findComposition(data.composition);
    // No such composition: the stock renderer says so next (No comp was found with the given name).
    if (!comp) {
        return;
    }
    var imported = {};
    for (var i = 0; i < data.fields.length; i++) {
        applyField(comp, data.fields[i], imported);
    }
}(FLATRENDER_DATA));
