# A stand-in for the parts of nixpkgs' `lib` and module system that the vmcreds
# modules use, for machines without nixpkgs (CI here has Debian's nix-bin and
# no Nix store). check.sh evaluates the modules with it: option declarations,
# defaults, definitions with mkIf/mkMerge/mkForce/mkDefault/mkAfter, submodules,
# type checks of the values set, assertions and the generated unit attributes.
#
# It is NOT nixpkgs: semantics are simplified (no option renames, no freeform
# modules, no `_module.args`, defaults only where an option has no definition,
# string-coercion of derivations by outPath). It catches mistakes in the
# modules' own code (a misspelt attribute, a wrong type, a broken
# assertion); what depends on nixpkgs itself is for `nix flake check`.
let
  b = builtins;

  lib = rec {
    inherit (b)
      all
      any
      attrNames
      attrValues
      concatLists
      concatMap
      concatStringsSep
      elem
      elemAt
      filter
      head
      isAttrs
      isList
      length
      replaceStrings
      stringLength
      tail
      ;

    # --- attribute sets and lists ---
    mapAttrsToList = f: s: map (n: f n s.${n}) (b.attrNames s);
    filterAttrs =
      p: s:
      b.listToAttrs (
        b.concatMap (n: if p n s.${n} then [ { name = n; value = s.${n}; } ] else [ ]) (b.attrNames s)
      );
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalAttrs = c: s: if c then s else { };
    optionalString = c: s: if c then s else "";
    range = first: last: if first > last then [ ] else b.genList (i: first + i) (last - first + 1);
    last = l: b.elemAt l (b.length l - 1);
    unique = b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ];
    allUnique = l: b.length (unique l) == b.length l;
    intersectLists = e: b.filter (x: b.elem x e);
    genAttrs = names: f: b.listToAttrs (map (n: { name = n; value = f n; }) names);
    recursiveUpdate =
      l: r:
      l
      // b.mapAttrs (
        n: v: if b.isAttrs v && b.isAttrs (l.${n} or null) then recursiveUpdate l.${n} v else v
      ) r;

    # --- strings ---
    hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
    hasSuffix =
      p: s:
      let
        lp = b.stringLength p;
        ls = b.stringLength s;
      in
      ls >= lp && b.substring (ls - lp) lp s == p;
    removePrefix = p: s: if hasPrefix p s then b.substring (b.stringLength p) (-1) s else s;
    removeSuffix =
      p: s: if hasSuffix p s then b.substring 0 (b.stringLength s - b.stringLength p) s else s;
    escapeRegex =
      let
        special = [ "\\" "[" "{" "(" ")" "^" "$" "?" "*" "+" "|" "." "]" "}" ];
      in
      b.replaceStrings special (map (c: "\\" + c) special);
    hasInfix = i: s: b.match ".*${escapeRegex i}.*" s != null;
    splitString = sep: s: b.filter b.isString (b.split (escapeRegex sep) s);
    concatMapStrings = f: l: b.concatStringsSep "" (map f l);
    concatMapStringsSep = sep: f: l: b.concatStringsSep sep (map f l);
    escapeShellArg = a: "'${b.replaceStrings [ "'" ] [ "'\\''" ] (toString a)}'";
    escapeShellArgs = l: b.concatStringsSep " " (map escapeShellArg l);
    getExe' = p: n: "${p}/bin/${n}";

    # --- options ---
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    mkOption = a: a // { _type = "option"; };
    mkEnableOption =
      what:
      mkOption {
        type = types.bool;
        default = false;
        description = "Whether to enable ${what}.";
      };
    mkPackageOption =
      pkgs: name: _:
      mkOption {
        type = types.package;
        default = pkgs.${name};
      };

    # --- definitions ---
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    mkOrder = priority: content: {
      _type = "order";
      inherit priority content;
    };
    mkBefore = mkOrder 500;
    mkAfter = mkOrder 1500;

    # --- types: { name; check; merge = loc: [ { prio; value; } ] -> value } ---
    types = rec {
      mkType = name: check: merge: {
        _type = "type";
        inherit name check merge;
      };
      unique =
        name: check:
        mkType name check (
          loc: defs:
          let
            values = lib.unique (map (d: d.value) defs);
          in
          if b.length values == 1 then
            b.head values
          else
            b.throw "the option `${loc}' has conflicting definitions: ${b.toJSON values}"
        );
      str = unique "string" b.isString;
      lines = mkType "lines" b.isString (loc: defs: b.concatStringsSep "\n" (map (d: d.value) defs));
      bool = unique "boolean" b.isBool;
      int = unique "integer" b.isInt;
      ints = {
        positive = unique "positive integer" (x: b.isInt x && x > 0);
        unsigned = unique "unsigned integer" (x: b.isInt x && x >= 0);
      };
      path = unique "path" (x: b.isPath x || (b.isString x && lib.hasPrefix "/" x) || (x ? outPath));
      package = unique "package" (x: b.isAttrs x && x ? outPath);
      enum = values: unique "one of ${b.toJSON values}" (x: b.elem x values);
      strMatching = re: unique "string matching ${re}" (x: b.isString x && b.match re x != null);
      nullOr =
        t:
        mkType "null or ${t.name}" (x: x == null || t.check x) (
          loc: defs:
          if b.all (d: d.value == null) defs then null else t.merge loc (b.filter (d: d.value != null) defs)
        );
      either =
        t1: t2:
        mkType "${t1.name} or ${t2.name}" (x: t1.check x || t2.check x) (
          loc: defs: if b.all (d: t1.check d.value) defs then t1.merge loc defs else t2.merge loc defs
        );
      listOf =
        t:
        mkType "list of ${t.name}" b.isList (
          loc: defs:
          b.concatMap (
            d:
            map (
              v:
              if t.check v then v else b.throw "`${loc}': element ${b.toJSON v} is not a ${t.name}"
            ) d.value
          ) defs
        );
      attrsOf =
        t:
        mkType "attribute set of ${t.name}" b.isAttrs (
          loc: defs:
          let
            names = lib.unique (b.concatMap (d: b.attrNames d.value) defs);
          in
          b.listToAttrs (
            map (n: {
              name = n;
              value = mergeDefinitions "${loc}.${n}" t (
                b.concatMap (d: if d.value ? ${n} then discharge d.prio d.value.${n} else [ ]) defs
              );
            }) names
          )
        );
      anything = mkType "anything" (_: true) (
        loc: defs:
        if b.all (d: b.isAttrs d.value && !(d.value ? outPath)) defs then
          (attrsOf anything).merge loc defs
        else if b.all (d: b.isList d.value) defs then
          b.concatMap (d: d.value) defs
        else
          (unique "anything" (_: true)).merge loc defs
      );
      submodule =
        module:
        mkType "submodule" b.isAttrs (
          loc: defs:
          (evalModules {
            modules = [ module ] ++ map (d: mkOverride d.prio d.value) defs;
            specialArgs.name = lib.last (lib.splitString "." loc);
            prefix = loc;
          }).config
        );
    };

    # mkIf/mkMerge/mkOverride/mkOrder around one option's definition: conditions
    # decided, priorities kept. -> [ { prio; value; } ]
    discharge =
      prio: v:
      if b.isAttrs v && v ? _type then
        if v._type == "if" then
          (if v.condition then discharge prio v.content else [ ])
        else if v._type == "merge" then
          b.concatMap (discharge prio) v.contents
        else if v._type == "override" then
          discharge v.priority v.content
        else if v._type == "order" then
          discharge prio v.content
        else
          [ { inherit prio; value = v; } ]
      else
        [ { inherit prio; value = v; } ];

    # Properties around an attribute set, pushed to its attributes without
    # evaluating conditions (nixpkgs' pushDownProperties): what lets a module
    # say `config = mkIf cfg.enable { … }`.
    pushDown =
      v:
      if b.isAttrs v && v ? _type then
        if v._type == "merge" then
          b.concatMap pushDown v.contents
        else if v._type == "if" then
          map (b.mapAttrs (_: x: mkIf v.condition x)) (pushDown v.content)
        else if v._type == "override" then
          map (b.mapAttrs (_: x: mkOverride v.priority x)) (pushDown v.content)
        else if v._type == "order" then
          pushDown v.content
        else
          [ v ]
      else
        [ v ];

    mergeDefinitions =
      loc: type: defs:
      let
        best = b.foldl' (m: d: if d.prio < m then d.prio else m) 9999 defs;
        kept = b.filter (d: d.prio == best) defs;
        bad = b.filter (d: !type.check d.value) kept;
      in
      if bad != [ ] then
        b.throw "the option `${loc}' is not of type ${type.name}: ${b.toJSON (b.head bad).value}"
      else
        type.merge loc kept;

    isOption = v: b.isAttrs v && (v._type or null) == "option";

    # modules: paths, functions or attribute sets; returns { config; options; }.
    evalModules =
      {
        modules,
        specialArgs ? { },
        prefix ? "",
        pkgs ? { },
        utils ? { },
      }:
      let
        collect =
          m:
          let
            loaded = if b.isPath m then import m else m;
            applied = if b.isFunction loaded then loaded args else loaded;
            normal =
              if applied ? options || applied ? config || applied ? imports then
                applied
              else
                {
                  config = b.removeAttrs applied [
                    "imports"
                    "key"
                    "_file"
                  ];
                };
          in
          [
            {
              key = if b.isPath m then toString m else null;
              options = normal.options or { };
              config = normal.config or { };
            }
          ]
          ++ b.concatMap collect (normal.imports or [ ]);
        # A file imported twice (common.nix by host.nix and guest.nix) counts once.
        modulesOnce = b.foldl' (
          acc: m: if m.key != null && b.elem m.key (map (x: x.key) acc) then acc else acc ++ [ m ]
        ) [ ] (b.concatMap collect modules);
        declarations = b.foldl' recursiveUpdate { } (map (m: m.options) modulesOnce);
        args = specialArgs // {
          inherit lib config pkgs utils;
          options = declarations;
        };
        evalAt =
          loc: decl: defs:
          if isOption decl then
            let
              discharged = b.concatMap (discharge 100) defs;
            in
            if discharged == [ ] then
              (if decl ? default then decl.default else b.throw "the option `${loc}' is used but not defined")
            else
              mergeDefinitions loc (decl.type or types.anything) discharged
          else
            let
              sets = b.concatMap pushDown defs;
              names = lib.unique (b.attrNames decl ++ b.concatMap b.attrNames sets);
            in
            b.listToAttrs (
              map (n: {
                name = n;
                value =
                  if decl ? ${n} then
                    evalAt (if loc == "" then n else "${loc}.${n}") decl.${n} (
                      b.concatMap (s: if s ? ${n} then [ s.${n} ] else [ ]) sets
                    )
                  else
                    b.throw "the option `${loc}.${n}' does not exist";
              }) names
            );
        config = evalAt prefix declarations (map (m: m.config) modulesOnce);
      in
      {
        inherit config;
        options = declarations;
      };
  };
in
lib
