# Pester 5 tests of the PowerShell salve ships (scripts/*.ps1), with Windows PowerShell's own
# parser. Small on purpose: what the tree-sitter checks in tests/it cannot prove without
# PowerShell. Run: Invoke-Pester -Path tests/windows (see README.md there).

BeforeDiscovery {
    $script:Shipped = Get-ChildItem -LiteralPath (Join-Path $PSScriptRoot '..\..\scripts') -Filter '*.ps1' |
        ForEach-Object { @{ Name = $_.Name; Path = $_.FullName } }
}

Describe 'shipped script <Name>' -ForEach $Shipped {
    BeforeAll {
        $tokens = $null
        $errors = $null
        $script:Ast = [Management.Automation.Language.Parser]::ParseFile($Path, [ref] $tokens, [ref] $errors)
        $script:ParseErrors = $errors
    }

    It 'parses with Windows PowerShell''s own parser' {
        $ParseErrors | Should -BeNullOrEmpty
    }

    It 'returns lists from its functions without nesting them in @()' {
        # Every function defined by the script, loaded alone (the script's main block is not run).
        $functions = $Ast.FindAll({ $args[0] -is [Management.Automation.Language.FunctionDefinitionAst] }, $false)
        foreach ($f in $functions) {
            $f.Extent.Text | Should -Not -Match 'return\s*,'
        }
    }
}
