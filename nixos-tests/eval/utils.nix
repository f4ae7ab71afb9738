# The functions of NixOS's `utils` (nixos/lib/utils.nix) that the vmcreds
# modules call, written here from reading NixOS's source so the modules can be
# evaluated without nixpkgs. Builtins only: the same file serves the real
# nixpkgs lib and the stand-in (eval/lib.nix), and is part of the golden
# outputs' source hash.
let
  b = builtins;
  hex = c: {
    " " = "20"; "!" = "21"; "\"" = "22"; "#" = "23"; "$" = "24"; "%" = "25"; "&" = "26";
    "'" = "27"; "(" = "28"; ")" = "29"; "*" = "2a"; "+" = "2b"; "," = "2c"; "-" = "2d";
    "." = "2e"; ";" = "3b"; "<" = "3c"; "=" = "3d"; ">" = "3e"; "@" = "40"; "[" = "5b";
    "\\" = "5c"; "]" = "5d"; "^" = "5e"; "`" = "60"; "{" = "7b"; "|" = "7c"; "}" = "7d";
    "~" = "7e";
  }.${c};
  # What systemd-escape --path escapes (besides '/'), as NixOS lists it.
  special = [ " " "!" "\"" "#" "$" "%" "&" "'" "(" ")" "*" "+" "," ";" "<" "=" ">" "@" "[" "\\" "]" "^" "`" "{" "|" "}" "~" "-" ];
  escapeC = list: b.replaceStrings list (map (c: "\\x${hex c}") list);
  hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
  hasSuffix =
    p: s:
    let
      lp = b.stringLength p;
      ls = b.stringLength s;
    in
    ls >= lp && b.substring (ls - lp) lp s == p;
  trim =
    s:
    let
      s1 = if hasPrefix "/" s then b.substring 1 (-1) s else s;
    in
    if hasSuffix "/" s1 then b.substring 0 (b.stringLength s1 - 1) s1 else s1;
  # "//" → "/", as lib.strings.normalizePath does.
  normalize =
    s:
    let
      s' = b.replaceStrings [ "//" ] [ "/" ] s;
    in
    if s' == s then s else normalize s';
in
rec {
  # ExecStart= words: JSON quoting (systemd unquotes "..." and C escapes), '%'
  # and '$' doubled so systemd expands neither specifiers nor variables.
  escapeSystemdExecArg =
    arg:
    let
      s =
        if b.isPath arg then
          "${arg}"
        else if b.isString arg then
          arg
        else if b.isInt arg || b.isFloat arg || (b.isAttrs arg && arg ? outPath) then
          toString arg
        else
          b.throw "escapeSystemdExecArg only allows strings, paths, numbers and derivations";
    in
    b.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (b.toJSON s);
  escapeSystemdExecArgs = args: b.concatStringsSep " " (map escapeSystemdExecArg args);

  # systemd-escape --path: the name of a path's .device/.mount unit.
  escapeSystemdPath =
    s:
    let
      n = normalize s;
      t = if n == "/" then n else trim n;
      escaped = escapeC special t;
      dotted = if hasPrefix "." escaped then "\\x2e" + b.substring 1 (-1) escaped else escaped;
    in
    b.replaceStrings [ "/" ] [ "-" ] dotted;
}
