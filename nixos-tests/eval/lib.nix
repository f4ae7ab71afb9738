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
# assertion). That it agrees with nixpkgs' real module system is checked, not
# assumed: check.sh compares what it evaluates (assertions, warnings,
# hostArgs, every rendered unit, the documented options) with the golden
# outputs recorded with the real lib (nixos-tests/golden/).
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
    inherit (b) sort lessThan toJSON;
    take = n: l: if n <= 0 || l == [ ] then [ ] else [ (b.head l) ] ++ take (n - 1) (b.tail l);
    imap1 = f: l: b.genList (i: f (i + 1) (b.elemAt l i)) (b.length l);
    flatten = x: if b.isList x then b.concatMap flatten x else [ x ];
    nameValuePair = name: value: { inherit name value; };
    mapAttrs' = f: s: b.listToAttrs (map (n: f n s.${n}) (b.attrNames s));
    concatMapAttrs = f: s: b.foldl' (acc: n: acc // f n s.${n}) { } (b.attrNames s);
    isDerivation = x: b.isAttrs x && (x.type or null) == "derivation";
    fixedWidthString =
      width: filler: s:
      if b.stringLength s >= width then s else fixedWidthString width filler (filler + s);
    fixedWidthNumber = width: n: fixedWidthString width "0" (toString n);
    getOutput = output: pkg: if !(pkg ? outputSpecified) || !pkg.outputSpecified then pkg.${output} or pkg.out or pkg else pkg;
    makeSearchPath = subDir: paths: b.concatStringsSep ":" (map (p: "${p}/${subDir}") (b.filter (p: p != null) paths));
    makeSearchPathOutput = output: subDir: pkgs: makeSearchPath subDir (map (getOutput output) pkgs);
    makeBinPath = makeSearchPathOutput "bin" "bin";
    showOption = b.concatStringsSep ".";
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
    hasInfix =
      i: s:
      let
        li = b.stringLength i;
        ls = b.stringLength s;
        at = n: n + li <= ls && (b.substring n li s == i || at (n + 1));
      in
      at 0;
    splitString = sep: s: b.filter b.isString (b.split (escapeRegex sep) s);
    concatMapStrings = f: l: b.concatStringsSep "" (map f l);
    concatMapStringsSep = sep: f: l: b.concatStringsSep sep (map f l);
    # Quoted only when needed, as nixpkgs does.
    escapeShellArg =
      a:
      let
        s = toString a;
      in
      if b.match "[[:alnum:],._+:@%/-]+" s == null then "'${b.replaceStrings [ "'" ] [ "'\\''" ] s}'" else s;
    escapeShellArgs = l: b.concatStringsSep " " (map escapeShellArg l);
    getExe' = p: n: "${p}/bin/${n}";

    # --- options ---
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    mkOption = a: a // { _type = "option"; };
    mkOptionType =
      {
        name,
        check ? (_: true),
        merge,
        ...
      }:
      types.mkType name check merge;
    mergeEqualOption =
      loc: defs:
      if b.length defs == 1 then
        (b.head defs).value
      else if b.all (d: d.value == (b.head defs).value) defs then
        (b.head defs).value
      else
        b.throw "The option `${showOption loc}' has conflicting definition values";
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

    # --- types: { name; check; merge = loc: [ { prio; order; value; } ] -> value;
    #     getSubOptions = loc: declarations } (loc: a list, as in nixpkgs) ---
    types = rec {
      mkType = name: check: merge: {
        _type = "type";
        inherit name check merge;
        getSubOptions = _: { };
        subPath = [ ];
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
            b.throw "the option `${showOption loc}' has conflicting definitions: ${b.toJSON values}"
        );
      str = unique "string" b.isString;
      lines = mkType "lines" b.isString (loc: defs: b.concatStringsSep "\n" (map (d: d.value) defs));
      bool = unique "boolean" b.isBool;
      int = unique "integer" b.isInt;
      ints = {
        positive = unique "positive integer" (x: b.isInt x && x > 0);
        unsigned = unique "unsigned integer" (x: b.isInt x && x >= 0);
      };
      path = unique "path" (
        x: b.isPath x || ((b.isString x || (b.isAttrs x && x ? outPath)) && b.substring 0 1 (toString x) == "/")
      );
      package = unique "package" (x: lib.isDerivation x || (b.isString x && lib.hasPrefix "${b.storeDir}/" x));
      enum = values: unique "one of ${b.toJSON values}" (x: b.elem x values);
      strMatching = re: unique "string matching ${re}" (x: b.isString x && b.match re x != null);
      unspecified = unique "unspecified" (_: true);
      attrs = mkType "attribute set" b.isAttrs (loc: defs: b.foldl' (a: d: a // d.value) { } defs);
      nullOr =
        t:
        mkType "null or ${t.name}" (x: x == null || t.check x) (
          loc: defs:
          if b.all (d: d.value == null) defs then null else t.merge loc (b.filter (d: d.value != null) defs)
        )
        // {
          inherit (t) getSubOptions subPath;
        };
      either =
        t1: t2:
        mkType "${t1.name} or ${t2.name}" (x: t1.check x || t2.check x) (
          loc: defs: if b.all (d: t1.check d.value) defs then t1.merge loc defs else t2.merge loc defs
        );
      oneOf = ts: b.foldl' either (b.head ts) (b.tail ts);
      listOf =
        t:
        mkType "list of ${t.name}" b.isList (
          loc: defs:
          b.concatMap (
            d:
            map (
              v:
              if t.check v then
                v
              else
                b.throw "`${showOption loc}': element ${b.toJSON v} is not a ${t.name}"
            ) d.value
          ) defs
        )
        // {
          getSubOptions = loc: t.getSubOptions (loc ++ [ "*" ]);
          subPath = [ "*" ] ++ t.subPath;
        };
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
              value = mergeDefinitions (loc ++ [ n ]) t (
                b.concatMap (d: if d.value ? ${n} then discharge d.prio d.value.${n} else [ ]) defs
              );
            }) names
          )
        )
        // {
          getSubOptions = loc: t.getSubOptions (loc ++ [ "<name>" ]);
          subPath = [ "<name>" ] ++ t.subPath;
        };
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
            specialArgs.name = lib.last loc;
            prefix = loc;
          }).config
        )
        // {
          getSubOptions =
            loc:
            (evalModules {
              modules = [ module ];
              specialArgs.name = lib.last loc;
              prefix = loc;
            }).options;
        };
    };

    # mkIf/mkMerge/mkOverride/mkOrder around one option's definition: conditions
    # decided, priorities and orders kept. -> [ { prio; order; value; } ]
    discharge = prio: dischargeOrdered prio 1000;
    dischargeOrdered =
      prio: order: v:
      if b.isAttrs v && v ? _type then
        if v._type == "if" then
          (if v.condition then dischargeOrdered prio order v.content else [ ])
        else if v._type == "merge" then
          b.concatMap (dischargeOrdered prio order) v.contents
        else if v._type == "override" then
          dischargeOrdered v.priority order v.content
        else if v._type == "order" then
          dischargeOrdered prio v.priority v.content
        else
          [ { inherit prio order; value = v; } ]
      else
        [ { inherit prio order; value = v; } ];

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
          map (b.mapAttrs (_: x: mkOrder v.priority x)) (pushDown v.content)
        else
          [ v ]
      else
        [ v ];

    # The definitions of the highest priority, sorted by mkOrder (stable),
    # type-checked, merged.
    mergeDefinitions =
      loc: type: defs:
      let
        best = b.foldl' (m: d: if d.prio < m then d.prio else m) 9999 defs;
        kept = b.filter (d: d.prio == best) defs;
        orders = lib.unique (b.sort b.lessThan (map (d: d.order) kept));
        sorted = b.concatMap (o: b.filter (d: d.order == o) kept) orders;
        bad = b.filter (d: !type.check d.value) sorted;
      in
      if bad != [ ] then
        b.throw "the option `${showOption loc}' is not of type ${type.name}: ${b.toJSON (b.head bad).value}"
      else
        type.merge loc sorted;

    isOption = v: b.isAttrs v && (v._type or null) == "option";

    # The options the NixOS manual would list (nixpkgs' optionAttrSetToDocList):
    # name, and the default unless there is a defaultText (forcing it is what
    # fails in the manual's build when a default needs a definition).
    optionAttrSetToDocList =
      let
        walk =
          loc: decl:
          if isOption decl then
            [
              (
                { name = showOption loc; }
                // (
                  if decl ? defaultText then
                    { default = decl.defaultText; }
                  else if decl ? default then
                    { inherit (decl) default; }
                  else
                    { }
                )
              )
            ]
            ++ (
              let
                t = decl.type or types.anything;
              in
              walk' (loc ++ t.subPath) (t.getSubOptions loc)
            )
          else
            walk' loc decl;
        walk' = loc: decls: b.concatMap (n: walk (loc ++ [ n ]) decls.${n}) (b.attrNames decls);
      in
      walk' [ ];

    # modules: paths, functions or attribute sets; returns { config; options; }.
    evalModules =
      {
        modules,
        specialArgs ? { },
        prefix ? [ ],
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
          inherit lib config;
          options = declarations;
        };
        evalAt =
          loc: decl: defs:
          if isOption decl then
            let
              discharged = b.concatMap (discharge 100) defs;
            in
            if discharged == [ ] then
              (
                if decl ? default then
                  decl.default
                else
                  b.throw "the option `${showOption loc}' is used but not defined"
              )
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
                    evalAt (loc ++ [ n ]) decl.${n} (b.concatMap (s: if s ? ${n} then [ s.${n} ] else [ ]) sets)
                  else
                    b.throw "the option `${showOption (loc ++ [ n ])}' does not exist";
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
